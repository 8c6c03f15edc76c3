package pgtest

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pgattest/pgattest/testenv"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// GenerateOptions shape a generated database.
type GenerateOptions struct {
	Bytes int64 // about this much on disk (pg_database_size), tables and indexes
}

// generated are the tables of a generated database: rows of mixed widths
// and types, large text and jsonb values, indexes and foreign keys; the
// text is hex from md5 over random numbers, which compresses about as well
// as real data does (not the blank filler of pgbench). share is the part of
// the target size each table takes, perRow its rough size on disk.
var generated = []struct {
	name, ddl, fill string
	share           float64
	perRow          int64
}{
	{"customers", `CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL,
		country char(2) NOT NULL, created_at timestamptz NOT NULL, profile jsonb)`,
		`INSERT INTO customers SELECT g, 'user' || g || '@' || substr(md5(g::text), 1, 8) || '.example', initcap(substr(md5(random()::text), 1, 12)),
			(ARRAY['DE','FR','US','JP','BR','IN'])[1 + g % 6], now() - g * interval '7 minutes',
			jsonb_build_object('plan', (ARRAY['free','pro','team'])[1 + g % 3], 'tags', jsonb_build_array(md5(random()::text), g % 97), 'score', random())
		FROM generate_series($1::int, $2::int) g`, 0.06, 260},
	{"orders", `CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, placed_at timestamptz NOT NULL,
		status text NOT NULL, total numeric(12,2) NOT NULL, note text)`,
		`INSERT INTO orders SELECT g, 1 + (g * 7919) % $3::int, now() - g * interval '13 seconds', (ARRAY['new','paid','shipped','returned'])[1 + g % 4],
			round((random() * 900 + 5)::numeric, 2), CASE WHEN g % 3 = 0 THEN md5(random()::text) || md5(random()::text) END
		FROM generate_series($1::bigint, $2::bigint) g`, 0.22, 150},
	{"events", `CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz NOT NULL, kind smallint NOT NULL, payload jsonb NOT NULL)`,
		`INSERT INTO events SELECT g, now() - g * interval '1 second', (g % 12)::smallint,
			jsonb_build_object('session', md5(random()::text), 'path', '/' || substr(md5(random()::text), 1, 10) || '/' || g % 1000,
				'agent', md5(random()::text) || md5(random()::text), 'ms', (random() * 3000)::int, 'items', jsonb_build_array(g % 17, md5(g::text)))
		FROM generate_series($1::bigint, $2::bigint) g`, 0.30, 420},
	{"documents", `CREATE TABLE documents (id int PRIMARY KEY, title text NOT NULL, body text NOT NULL)`,
		`INSERT INTO documents SELECT g, 'Document ' || g || ' ' || substr(md5(random()::text), 1, 16),
			(SELECT string_agg(md5(random()::text || g || i), ' ') FROM generate_series(1, 40) i)
		FROM generate_series($1::int, $2::int) g`, 0.24, 1500},
	{"metrics", `CREATE TABLE metrics (device int NOT NULL, ts timestamptz NOT NULL, v1 float8, v2 float8, v3 int, ok bool)`,
		`INSERT INTO metrics SELECT g % 500, now() - g * interval '250 milliseconds', random(), random() * 100, (random() * 1e6)::int, g % 7 <> 0
		FROM generate_series($1::bigint, $2::bigint) g`, 0.18, 75},
}

var generatedIndexes = []string{
	`CREATE INDEX ON orders (customer_id)`,
	`CREATE INDEX ON orders (placed_at)`,
	`CREATE INDEX ON events (at)`,
	`CREATE INDEX ON metrics (device, ts)`,
}

// Generate creates database db in c and fills it to about o.Bytes (see
// generated), two connections at a time. It returns the database's size.
func Generate(ctx context.Context, c *testenv.Cluster, db string, o GenerateOptions) (int64, error) {
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return 0, err
	}
	dbc, err := pgx.Connect(ctx, c.ConnString(db))
	if err != nil {
		return 0, err
	}
	defer dbc.Close(ctx)
	rows := map[string]int64{}
	for _, t := range generated {
		if _, err := dbc.Exec(ctx, t.ddl); err != nil {
			return 0, fmt.Errorf("create %s: %w", t.name, err)
		}
		rows[t.name] = max(1000, int64(float64(o.Bytes)*t.share)/t.perRow)
	}
	customers := rows["customers"]
	// Fill in chunks, two at a time; customers first (orders refer to them).
	for _, phase := range [][]string{{"customers"}, {"orders", "events", "documents", "metrics"}} {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(2)
		for _, t := range generated {
			if !slices.Contains(phase, t.name) {
				continue
			}
			const chunk = 200_000
			for from := int64(1); from <= rows[t.name]; from += chunk {
				to := min(from+chunk-1, rows[t.name])
				g.Go(func() error {
					wc, err := pgx.Connect(gctx, c.ConnString(db))
					if err != nil {
						return err
					}
					defer wc.Close(context.Background())
					args := []any{from, to}
					if strings.Contains(t.fill, "$3") {
						args = append(args, customers)
					}
					if _, err := wc.Exec(gctx, t.fill, args...); err != nil {
						return fmt.Errorf("fill %s: %w", t.name, err)
					}
					return nil
				})
			}
		}
		if err := g.Wait(); err != nil {
			return 0, err
		}
	}
	for _, q := range append(generatedIndexes, "VACUUM ANALYZE") {
		if _, err := dbc.Exec(ctx, q); err != nil {
			return 0, fmt.Errorf("%s: %w", q, err)
		}
	}
	var size int64
	err = dbc.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size)
	return size, err
}
