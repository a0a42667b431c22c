// Package replicas lets several Slipway daemons share the repositories through Kubernetes
// Leases (coordination.k8s.io/v1).
//
// Each replica renews a membership Lease of its own. The repositories are cut into a fixed
// number of shards; each shard goes to one live replica, chosen by rendezvous hashing over
// the live members, so a member joining or leaving moves only the shards it wins or held.
// A replica works on a shard's repositories only while it holds the shard's Lease:
//
//   - it takes a Lease only when the hash chooses it and the Lease is free or expired, by an
//     update carrying the resourceVersion it read, so of two replicas racing one wins;
//   - it gives a Lease up (to a member the hash now prefers) only after the shard's work has
//     stopped;
//   - it stops a shard's work once renewDeadline has passed since it last renewed the
//     Lease, which is before leaseDuration, when another replica may take it; a timer of
//     its own watches that deadline, so a round held up by the API server cannot delay it.
//
// Hence never two replicas run one repository's work at once, provided the replicas'
// clocks agree to within leaseDuration - renewDeadline less the time work takes to stop
// (a Lease's expiry is read from its renewTime, as the kube-scheduler and the controller
// managers do under NTP-synchronised nodes).
//
// One LIST of the Leases per retry period (plus the renewals of held ones) is all a
// replica asks of the API server; it also wakes at the moment a Lease it watches for
// expires and takes what it may before it renews its own (a few updates at once), so a dead replica's shards move
// within leaseDuration of its last renewal plus one LIST and the updates taking them.
package replicas
