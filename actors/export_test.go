package actors

// LeaseFreeze is the message the supervisor sends the lease actor when a
// shutdown starts, for the tests of package actors_test.
var LeaseFreeze any = leaseFreeze{}

// NeverFull makes a test client that only produces an actors.Producer
// whose room never runs out (neverFull), for the tests of package
// actors_test.
type NeverFull = neverFull
