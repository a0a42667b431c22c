// Package drift keeps the cluster matching what Slipway deployed. Per cluster it watches
// only the objects carrying Slipway's owner label, and only the kinds current revisions
// applied, so its memory follows the managed objects, not the cluster. A change or
// deletion of one such object triggers a server-side dry-run diff of that object alone
// against its revision; a periodic sweep re-checks everything as a safety net. Drift is
// reported, or corrected by re-applying the stored object, as the task's policy says.
package drift
