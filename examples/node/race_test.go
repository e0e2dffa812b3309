//go:build race

package main

// raceEnabled makes TestMain build the finp2p binary with the race detector
// too, so the node processes the tests start are checked as well.
const raceEnabled = true
