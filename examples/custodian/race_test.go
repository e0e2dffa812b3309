//go:build race

package main

// raceEnabled makes the test build the custodian program with the race
// detector too, so the run it checks is checked for races as well.
const raceEnabled = true
