"""Google Research Football (nerveX's app_zoo/gfootball): academy scenarios as cooperative teams."""
