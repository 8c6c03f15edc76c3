// Package catalog is pgattest's record of every backup: one bbolt file that
// answers "which proven backup stood at time T" in one cursor seek, and
// carries a hash chain that shows whether anything was altered.
//
// # Buckets
//
//	backups   id → record JSON
//	by_time   name 0x00 BE(start nanos) id → nothing   (AsOf, List by name)
//	by_start  BE(start nanos) id → nothing             (List of all names)
//	events    BE(seq) → event JSON                     (the audit chain)
//	meta      schema version, head hash, head seq
//
// # The chain
//
// Every change appends an event {seq, at, kind, backup_id, body_hash, prev,
// hash} in the same transaction as the change, where hash = BLAKE3(prev ‖
// canonical event) and body_hash = BLAKE3(record JSON as stored). Editing a
// record, an event, or deleting either, breaks a link that [Catalog.VerifyChain]
// names. Rewriting the whole chain consistently is only detectable against a
// head hash kept elsewhere: [Catalog.Head] gives it.
//
// # Locking
//
// bbolt takes an exclusive flock on the file for as long as it is open; a
// second process waits up to [Options.Timeout] and then fails with
// [ErrBusy], naming the holder's pid. Callers keep the catalog open only
// for the moments they read or write it.
//
// The package knows nothing of pg_dump: it stores what it is given.
package catalog
