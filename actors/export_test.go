package actors

// LeaseFreeze is the message the supervisor sends the lease actor when a
// shutdown starts, for the tests of package actors_test.
var LeaseFreeze any = leaseFreeze{}
