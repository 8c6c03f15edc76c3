package testenv

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/jackc/pgx/v5"
)

//go:embed sample.sql
var sampleSQL string

// SampleRoles are the roles the sample database uses besides the superuser:
// the owner of its objects and a read-only role with GRANTs.
var SampleRoles = []string{"shop_owner", "shop_reader"}

// LoadSample creates database db in c, owned by shop_owner, and fills it with
// the sample shop: schemas, enum, domain and composite types, tables with
// foreign keys and CHECKs, a partitioned table, views, a materialized view,
// functions and a trigger, sequences, a large object, comments, GRANTs and
// default privileges, and about 200,000 rows. The content is deterministic.
func LoadSample(ctx context.Context, c *Cluster, db string) error {
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("load sample: connect: %w", err)
	}
	defer conn.Close(ctx)
	for _, r := range SampleRoles {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", r).Scan(&exists); err != nil {
			return fmt.Errorf("load sample: %w", err)
		}
		if !exists {
			if _, err := conn.Exec(ctx, "CREATE ROLE "+pgx.Identifier{r}.Sanitize()); err != nil {
				return fmt.Errorf("load sample: create role %s: %w", r, err)
			}
		}
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER shop_owner", pgx.Identifier{db}.Sanitize())); err != nil {
		return fmt.Errorf("load sample: create database %q: %w", db, err)
	}
	dbc, err := pgx.Connect(ctx, c.ConnString(db))
	if err != nil {
		return fmt.Errorf("load sample: connect to %q: %w", db, err)
	}
	defer dbc.Close(ctx)
	// The simple protocol runs the whole script as one multi-statement string.
	if _, err := dbc.Exec(ctx, sampleSQL, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("load sample into %q: %w", db, err)
	}
	return nil
}
