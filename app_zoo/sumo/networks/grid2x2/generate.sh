#!/usr/bin/env bash
# Regenerates grid2x2.net.xml with SUMO's netgenerate (committed output made with SUMO 1.15.0):
# a 2x2 grid of signalized intersections A0, A1, B0, B1 (200 m apart), each arm one lane at 50 km/h,
# with 250 m feeder roads to the 8 fringe nodes. netgenerate writes each signal a static two-phase
# program (42 s green, 3 s yellow per direction: the fixed-time baseline's timing).
# The demand (grid2x2.rou.xml) is hand-written.
set -euo pipefail
cd "$(dirname "$0")"
netgenerate --grid --grid.number 2 --grid.length 200 --grid.attach-length 250 \
    --default.lanenumber 1 --default.speed 13.89 --no-turnarounds true \
    --tls.set A0,A1,B0,B1 --tls.default-type static \
    --output-file grid2x2.net.xml
