//go:build !race

package outbox

// raceEnabled reports a -race build, whose sync.Pool drops a share of
// what it is given: allocation counts do not hold there.
const raceEnabled = false
