"""The twin's NB-IoT module: a HiSilicon Boudica (Hi2115) class modem speaking the BC95/BC28 AT dialect."""
