// Package testenv is the throwaway-Postgres runtime of the proof: it finds
// local PostgreSQL binaries and starts throwaway clusters; the proof stage
// restores every archive into one (and every test that needs a database
// starts its own, through testenv/pgtest).
//
// # Binaries
//
// [Find] looks for a folder holding the tools a caller needs (initdb and
// postgres, or pg_dump and pg_restore) with at least a given major version:
// in the folders the caller names (--pg-bin), else on PATH and in the
// standard folders of Debian (/usr/lib/postgresql/*/bin), RHEL, Homebrew and
// source builds. The newest wins.
//
// # Clusters
//
// [Start] runs initdb once per toolchain into a template in the user's cache
// folder (creation is locked across processes), then copies the template for
// each new cluster, so a start after the first takes a fraction of a second.
// A cluster listens on a Unix socket in its own 0700 folder and on no TCP
// port unless asked; it runs with fsync, full-page writes and WAL archiving
// off, since it never has to survive a crash. As root, initdb and postgres
// run as pgattest's own system user ([ServerUserName], created if missing),
// as they refuse to run as root; never as "postgres", whose files include
// the host's real clusters. Each cluster's superuser gets a random name
// unless the caller names one ([Options.Superuser]); with
// [Options.NoNetwork] the server runs in a network namespace of its own
// ([Sandbox]). The proof's clusters take both.
//
// A cluster's folder is a [Scratch] folder: it belongs to the process that
// made it for as long as that process lives. [Cluster.Stop] shuts the server
// down and removes the folder; if the owner is killed instead, the server
// gets SIGQUIT from the kernel (parent-death signal) and the next Start in
// the same parent folder removes what was left.
//
// # Tests
//
// This package is the runtime the proof uses, linked into the pgattest
// binary. What only tests use (a cluster per test, PgBouncer, generated
// databases, child-process helpers, the skip-or-fail rule of
// PGATTEST_REQUIRE_PG) is in testenv/pgtest, which the binary does not
// link, nor the testing package.
package testenv
