//go:build race

package fakebackend

// raceEnabled reports a -race build, to size the heavy tests down.
const raceEnabled = true
