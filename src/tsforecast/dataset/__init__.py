"""The one prepared format (a panel; one series is a panel of one): splits, windows as views, sampling."""
