package verify

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgattest/pgattest/testenv"
)

// Extensions returns the names of the extensions the archive creates.
func (t *TOC) Extensions() []string {
	var names []string
	for _, e := range t.Entries {
		if e.Type == "EXTENSION" {
			names = append(names, e.Name)
		}
	}
	sort.Strings(names)
	return names
}

// MissingExtensions returns those of names that the cluster cannot create
// (not in pg_available_extensions).
func MissingExtensions(ctx context.Context, c *testenv.Cluster, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return nil, fmt.Errorf("connect to throwaway cluster: %w", err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(ctx, `SELECT name FROM pg_available_extensions WHERE name = ANY($1)`, names)
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list the throwaway cluster's extensions: %w", err)
	}
	var missing []string
	for _, n := range names {
		if !slices.Contains(have, n) {
			missing = append(missing, n)
		}
	}
	return missing, nil
}

// Describe names the entry for a message: "TABLE public.t",
// "COMMENT EXTENSION fakext".
func (e Entry) Describe() string {
	if strings.HasPrefix(e.Name, e.Type+" ") { // "CAST (a AS b)"
		return e.Name
	}
	if e.Schema == "" {
		return e.Type + " " + e.Name
	}
	return e.Type + " " + e.Schema + "." + e.Name
}
