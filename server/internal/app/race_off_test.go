//go:build !race

package app_test

// raceDetector says whether the race detector is on: it slows bcrypt about
// tenfold, so measurements under it mean little.
const raceDetector = false
