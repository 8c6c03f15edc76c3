package catalog

import "time"

// Identity is a database as its server describes itself, read at backup
// and before a restore: never how a connection string spelled it (a
// socket or TCP, localhost or ::1, a pooler in front, a URL or key=value).
type Identity struct {
	// SystemID is the cluster's system identifier (pg_control_system()),
	// when the role may read it; "" otherwise.
	SystemID string `json:"system_id,omitempty"`
	// What any role can read: when the server started, its port, and the
	// database's OID and name.
	ServerStarted time.Time `json:"server_started"`
	Port          int       `json:"port"`
	DatabaseOID   uint32    `json:"database_oid"`
	Database      string    `json:"database"`
}

// SameDatabase reports whether a and b may be the same database, for a
// restore that must never land on a backup's own source: it errs toward
// "the same". With both system identifiers, the cluster is the same when
// they match and the database when its OID or name does; without them, a
// server is the same when its start time and port match, and otherwise
// still counts as the same when port, OID and name all do (it may have
// restarted since).
func (a Identity) SameDatabase(b Identity) bool {
	db := a.DatabaseOID == b.DatabaseOID || a.Database == b.Database
	if a.SystemID != "" && b.SystemID != "" {
		return a.SystemID == b.SystemID && db
	}
	sameServer := a.Port == b.Port && !a.ServerStarted.IsZero() && a.ServerStarted.Equal(b.ServerStarted)
	return (sameServer && db) || (a.Port == b.Port && a.DatabaseOID == b.DatabaseOID && a.Database == b.Database)
}

// SameSource reports whether a and b are the same source for a backup
// name, which must never mix two: the system identifiers when both are
// known, else the database's OID, name and port, which a restart does not
// change (a database dropped and made again is another source).
func (a Identity) SameSource(b Identity) bool {
	if a.SystemID != "" && b.SystemID != "" {
		return a.SystemID == b.SystemID && a.DatabaseOID == b.DatabaseOID
	}
	return a.Port == b.Port && a.DatabaseOID == b.DatabaseOID && a.Database == b.Database
}
