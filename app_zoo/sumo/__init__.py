"""Traffic-signal control in the SUMO simulator (nerveX's app_zoo/sumo), driven through TraCI."""
