"""The twin's meter: the MCU firmware that drives the module, its state, and its near-end port."""
