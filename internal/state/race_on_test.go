//go:build race

package state

// raceEnabled shortens the exhaustive tests, which the race detector slows
// down about fifty times.
const raceEnabled = true
