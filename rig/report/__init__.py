"""Evidence and reports: plots, the certification matrix, the Allure report."""
