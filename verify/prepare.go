package verify

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgattest/pgattest/testenv"
)

// Isolation is how a proof kept the archive's code from the host.
type Isolation struct {
	// RestoreRole is the role pg_restore connected as: NOSUPERUSER, a
	// member of every role the archive names (the database's owner
	// among them, so it acts as the proof database's owner).
	RestoreRole string
	// ServerUser is the system user the proof's server ran as.
	ServerUser string
	// Network is the network the server and pg_restore had.
	Network string
}

// setup is a proof database made ready for an unprivileged restore.
type setup struct {
	restorer string // the role pg_restore connects as
	keep     []Entry
	sandbox  testenv.Sandbox
}

// prepareProof makes the proof database ready in c, as the cluster's
// superuser and before any of the archive's SQL runs:
//
//   - every role the archive names, created NOLOGIN NOSUPERUSER NOCREATEDB
//     NOCREATEROLE NOREPLICATION NOBYPASSRLS (none may exist already: the
//     cluster's own superuser has a random name no archive can carry);
//   - the restoring role, LOGIN but nothing more, a member of those roles
//     (so ALTER … OWNER and GRANT restore as they were);
//   - the proof database, in the archive's encoding, owned by the archive's
//     database owner (or the restoring role when it names none);
//   - the archive's schemas, owned as in the archive, with CREATE for the
//     roles that own objects in one they do not own (createSchemas);
//   - the archive's extensions, from the local installation (their scripts
//     are the local install's code, not the dump's); an extension that is
//     missing (and accepted with SkipExtensions) or that brings an
//     untrusted language is left out with every entry that needs it.
//
// It then plans the restore (PlanRestore): rep.Skipped says what is left
// out and why; rep.Created what pgattest made itself.
func prepareProof(ctx context.Context, o Options, c *testenv.Cluster, rep *Report) (*setup, error) {
	s := &setup{restorer: testenv.RandomName("pgattest_restore_")}
	s.sandbox = testenv.NetworkSandbox(c.Toolchain.Path("postgres"), "--version")
	rep.Isolation = Isolation{RestoreRole: s.restorer, ServerUser: c.ServerUser, Network: c.Network}
	if c.Network != s.sandbox.Network() {
		rep.Isolation.Network = "server: " + c.Network + "; pg_restore: " + s.sandbox.Network()
	}
	if err := createRoles(ctx, c, rep.Facts, s.restorer); err != nil {
		return nil, err
	}
	if err := grantMemberships(ctx, c, rep, o.Superusers, o.Memberships); err != nil {
		return nil, err
	}
	conn, err := c.Connect(ctx, ProofDB)
	if err != nil {
		return nil, fmt.Errorf("connect to the proof database: %w", err)
	}
	defer conn.Close(context.Background())
	in := PlanInput{LeftOut: map[string]string{}}
	if err := createSchemas(ctx, conn, rep, &in); err != nil {
		return nil, err
	}
	if exts := ArchiveExtensions(rep.TOC); len(exts) > 0 {
		if err := createExtensions(ctx, o, c, conn, rep, exts, &in); err != nil {
			return nil, err
		}
		if in.ExtensionTables, in.ExtensionSequences, in.ExtensionComments, err = extensionObjects(ctx, conn); err != nil {
			return nil, err
		}
	}
	langs, err := languages(ctx, conn)
	if err != nil {
		return nil, err
	}
	in.Languages = langs
	plan := PlanRestore(rep.TOC, in)
	rep.Skipped = append(rep.Skipped, plan.Skipped...)
	s.keep = plan.Keep
	if len(plan.ExtensionData) > 0 {
		if rep.extensionRows, err = grantExtensionData(ctx, conn, s.restorer, plan.ExtensionData, in.ExtensionTables, rep); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// createRoles creates the archive's roles, the restoring role and the proof
// database: owned, as the source was, by the archive's database owner (the
// restoring role, a member, acts as that owner) or else by the restoring
// role.
func createRoles(ctx context.Context, c *testenv.Cluster, facts SchemaFacts, restorer string) error {
	roles, encoding := facts.Roles, facts.Encoding
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("connect to throwaway cluster: %w", err)
	}
	defer conn.Close(context.Background())
	roles = slices.Clone(roles)
	slices.Sort(roles)
	roles = slices.Compact(roles)
	roles = slices.DeleteFunc(roles, func(r string) bool { return r == "" || strings.HasPrefix(r, "pg_") })
	var existing []string
	rows, _ := conn.Query(ctx, `SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)`, append(roles, restorer))
	if existing, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return fmt.Errorf("list the throwaway cluster's roles: %w", err)
	}
	if len(existing) > 0 {
		// Unreachable but by a guessed random name: never take it over.
		return fmt.Errorf("the throwaway cluster already has role %q, which the archive names", existing[0])
	}
	const attrs = "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
	var b strings.Builder
	for _, r := range roles {
		fmt.Fprintf(&b, "CREATE ROLE %s %s;\n", pgx.Identifier{r}.Sanitize(), attrs)
	}
	fmt.Fprintf(&b, "CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;\n", pgx.Identifier{restorer}.Sanitize())
	if len(roles) > 0 {
		ids := make([]string, len(roles))
		for i, r := range roles {
			ids[i] = pgx.Identifier{r}.Sanitize()
		}
		fmt.Fprintf(&b, "GRANT %s TO %s;\n", strings.Join(ids, ", "), pgx.Identifier{restorer}.Sanitize())
	}
	if _, err := conn.Exec(ctx, b.String()); err != nil {
		return fmt.Errorf("create the archive's %d roles in the throwaway cluster: %w", len(roles), err)
	}
	enc := encoding
	if enc == "" {
		enc = "UTF8"
	}
	owner := restorer
	if facts.DBOwner != "" && slices.Contains(roles, facts.DBOwner) {
		owner = facts.DBOwner
	}
	// CreateProofDB may have made it already, while the dump started.
	var made string
	err = conn.QueryRow(ctx, `SELECT coalesce((SELECT pg_catalog.pg_encoding_to_char(encoding) FROM pg_catalog.pg_database WHERE datname = $1), '')`,
		ProofDB).Scan(&made)
	if err != nil {
		return fmt.Errorf("look for the proof database: %w", err)
	}
	db := pgx.Identifier{ProofDB}.Sanitize()
	if made != "" && !strings.EqualFold(made, enc) {
		if _, err := conn.Exec(ctx, "DROP DATABASE "+db); err != nil {
			return fmt.Errorf("drop the proof database made in %s: %w", made, err)
		}
		made = ""
	}
	if made == "" {
		err = createProofDB(ctx, conn, enc)
	}
	if err == nil {
		_, err = conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s OWNER TO %s", db, pgx.Identifier{owner}.Sanitize()))
	}
	if err != nil {
		return fmt.Errorf("create proof database (encoding %s): %w", enc, err)
	}
	return nil
}

// Membership is one role's membership in another on the source.
type Membership struct {
	Role   string // the role granted
	Member string // the role it was granted to
}

// grantMemberships makes, among the archive's roles, the memberships they
// had on the source, and makes each that was a superuser there a member
// of the archive's other roles: on the source it could use every object,
// here it may use those of the archive (and nothing of the host: it is no
// superuser, and the built-in pg_* roles are never granted). A grant that
// would close a circle of memberships is left out.
func grantMemberships(ctx context.Context, c *testenv.Cluster, rep *Report, superusers []string, members []Membership) error {
	grants, kept, sus := membershipGrants(rep.Facts.Roles, superusers, members)
	if len(grants) == 0 {
		return nil
	}
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("connect to throwaway cluster: %w", err)
	}
	defer conn.Close(context.Background())
	var b strings.Builder
	for _, g := range grants {
		fmt.Fprintf(&b, "GRANT %s TO %s;\n", pgx.Identifier{g.Role}.Sanitize(), pgx.Identifier{g.Member}.Sanitize())
	}
	if _, err := conn.Exec(ctx, b.String()); err != nil {
		return fmt.Errorf("grant the source's role memberships in the throwaway cluster: %w", err)
	}
	if kept > 0 {
		as := make([]string, kept)
		for i, g := range grants[:kept] {
			as[i] = g.Member + " in " + g.Role
		}
		rep.Created = append(rep.Created, "role memberships as on the source: "+strings.Join(as, ", "))
	}
	if len(sus) > 0 {
		rep.Created = append(rep.Created, fmt.Sprintf("%s, superuser%s on the source, made member%s of the archive's other roles (and no superuser here), "+
			"so that what %s own%s uses the archive's objects as it did there", strings.Join(sus, ", "), plural(len(sus)), plural(len(sus)),
			map[bool]string{true: "it", false: "they"}[len(sus) == 1], map[bool]string{true: "s", false: ""}[len(sus) == 1]))
	}
	return nil
}

// membershipGrants decides grantMemberships' grants among roles (the
// archive's): the source's memberships first (kept of them), then each of
// superusers (sus: those the archive names) into every role that was not
// one; a grant that is there already, through others, or that would close
// a circle is left out. The pure decision.
func membershipGrants(roles, superusers []string, members []Membership) (grants []Membership, kept int, sus []string) {
	named := map[string]bool{}
	for _, r := range roles {
		named[r] = !strings.HasPrefix(r, "pg_")
	}
	memberOf := map[string][]string{}       // member → roles it is in
	reaches := func(from, to string) bool { // from is (transitively) a member of to
		seen := map[string]bool{}
		stack := []string{from}
		for len(stack) > 0 {
			r := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if r == to {
				return true
			}
			if !seen[r] {
				seen[r] = true
				stack = append(stack, memberOf[r]...)
			}
		}
		return false
	}
	add := func(m Membership) {
		if m.Role == m.Member || !named[m.Role] || !named[m.Member] || reaches(m.Member, m.Role) || reaches(m.Role, m.Member) {
			return
		}
		memberOf[m.Member] = append(memberOf[m.Member], m.Role)
		grants = append(grants, m)
	}
	for _, m := range members {
		add(m)
	}
	kept = len(grants)
	for _, su := range superusers {
		if !named[su] {
			continue
		}
		sus = append(sus, su)
		for _, r := range roles {
			if !slices.Contains(superusers, r) {
				add(Membership{Role: r, Member: su})
			}
		}
	}
	return grants, kept, sus
}

// CreateProofDB makes the proof database in c in the encoding, before the
// archive's table of contents is known (from the source's own answer in
// preflight), so that a streamed proof does not wait for it: Prove and
// StartStream take it over (its owner is set then), or make another when
// the archive's encoding is not that one. It holds nothing of the archive.
func CreateProofDB(ctx context.Context, c *testenv.Cluster, encoding string) error {
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("connect to throwaway cluster: %w", err)
	}
	defer conn.Close(context.Background())
	if encoding == "" {
		encoding = "UTF8"
	}
	return createProofDB(ctx, conn, encoding)
}

func createProofDB(ctx context.Context, conn *pgx.Conn, encoding string) error {
	_, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0 ENCODING %s LC_COLLATE 'C' LC_CTYPE 'C'",
		pgx.Identifier{ProofDB}.Sanitize(), quoteLiteral(encoding)))
	return err
}

// createSchemas makes, as the superuser and before the restore, the schemas
// the archive makes (owned as in the archive: their SCHEMA entries are then
// not restored), and gives CREATE on a schema to each role that owns
// objects in it without owning it. A superuser's restore hands objects to
// their owners without that check; an ordinary role's restore needs the
// new owner to have CREATE there at that moment, and the archive's own
// grants come only at the end of the restore.
func createSchemas(ctx context.Context, conn *pgx.Conn, rep *Report, in *PlanInput) error {
	rows, _ := conn.Query(ctx, `SELECT nspname::text, pg_catalog.pg_get_userbyid(nspowner)::text FROM pg_catalog.pg_namespace`)
	owner := map[string]string{}
	var name, own string
	if _, err := pgx.ForEachRow(rows, []any{&name, &own}, func() error { owner[name] = own; return nil }); err != nil {
		return fmt.Errorf("list the proof database's schemas: %w", err)
	}
	var b strings.Builder
	var made []string
	for _, e := range rep.TOC.Entries {
		if e.Type != "SCHEMA" {
			continue
		}
		if _, ok := owner[e.Name]; ok {
			if e.Owner != "" { // public: pg_restore hands it over itself
				owner[e.Name] = e.Owner
			}
			continue
		}
		fmt.Fprintf(&b, "CREATE SCHEMA %s", pgx.Identifier{e.Name}.Sanitize())
		if e.Owner != "" {
			fmt.Fprintf(&b, " AUTHORIZATION %s", pgx.Identifier{e.Owner}.Sanitize())
		}
		b.WriteString(";\n")
		owner[e.Name] = e.Owner
		made = append(made, e.Name)
		in.Schemas = append(in.Schemas, e.Name)
	}
	if owner["public"] == "pg_database_owner" && rep.Facts.DBOwner != "" {
		owner["public"] = rep.Facts.DBOwner
	}
	need := map[string][]string{}
	var schemas []string
	for _, e := range rep.TOC.Entries {
		if e.Schema == "" || e.Owner == "" || e.Owner == owner[e.Schema] || e.HasData() {
			continue
		}
		if _, ok := owner[e.Schema]; !ok || slices.Contains(need[e.Schema], e.Owner) {
			continue
		}
		if len(need[e.Schema]) == 0 {
			schemas = append(schemas, e.Schema)
		}
		need[e.Schema] = append(need[e.Schema], e.Owner)
	}
	var granted []string
	for _, sc := range schemas {
		ids := make([]string, len(need[sc]))
		for i, r := range need[sc] {
			ids[i] = pgx.Identifier{r}.Sanitize()
		}
		fmt.Fprintf(&b, "GRANT CREATE ON SCHEMA %s TO %s;\n", pgx.Identifier{sc}.Sanitize(), strings.Join(ids, ", "))
		granted = append(granted, fmt.Sprintf("%s (for %s)", sc, strings.Join(need[sc], ", ")))
	}
	if b.Len() == 0 {
		return nil
	}
	if _, err := conn.Exec(ctx, b.String()); err != nil {
		return fmt.Errorf("create the archive's schemas in the proof database: %w", err)
	}
	if len(made) > 0 {
		rep.Created = append(rep.Created, fmt.Sprintf("%d schema%s, owned as in the archive: %s", len(made), plural(len(made)), strings.Join(made, ", ")))
	}
	if len(granted) > 0 {
		rep.Created = append(rep.Created, "CREATE on schema "+strings.Join(granted, "; ")+
			", so that their objects can be handed to them without a superuser")
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// createExtensions creates the archive's extensions in the proof database
// as the superuser, before the restore. A missing one fails the proof
// unless o.SkipExtensions names it; one that brings an untrusted language
// is never installed. Both go into in.LeftOut.
func createExtensions(ctx context.Context, o Options, c *testenv.Cluster, conn *pgx.Conn, rep *Report, exts []ExtensionEntry, in *PlanInput) error {
	names := make([]string, len(exts))
	for i, x := range exts {
		names[i] = x.Name
	}
	missing, err := MissingExtensions(ctx, c, names)
	if err != nil {
		return err
	}
	server := c.Toolchain.Version.String()
	var refused []string
	for _, name := range missing {
		if !slices.Contains(o.SkipExtensions, name) {
			refused = append(refused, name)
		}
		in.LeftOut[name] = fmt.Sprintf("not in the proving Postgres %s (left out by --verify-skip-extension)", server)
	}
	if len(refused) > 0 {
		return &MissingExtensionError{Names: refused, Server: server}
	}
	for _, x := range exts {
		if _, out := in.LeftOut[x.Name]; out {
			continue
		}
		version, untrusted, err := createExtension(ctx, conn, x)
		switch {
		case err != nil:
			return &ExtensionError{Name: x.Name, Server: server, Err: err}
		case untrusted != "":
			in.LeftOut[x.Name] = fmt.Sprintf("it brings the untrusted language %s, which is never installed in the proof", untrusted)
		default:
			rep.Created = append(rep.Created, fmt.Sprintf("extension %s %s from the local installation", x.Name, version))
		}
	}
	return nil
}

// createExtension creates one extension (and any it requires) in a
// transaction of its own, and rolls it back when it brought an untrusted
// procedural language.
func createExtension(ctx context.Context, conn *pgx.Conn, x ExtensionEntry) (version, untrusted string, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return "", "", err
	}
	defer tx.Rollback(context.Background())
	q := "CREATE EXTENSION IF NOT EXISTS " + pgx.Identifier{x.Name}.Sanitize()
	if x.Schema != "" {
		q += " WITH SCHEMA " + pgx.Identifier{x.Schema}.Sanitize()
	}
	if _, err := tx.Exec(ctx, q+" CASCADE"); err != nil {
		return "", "", err
	}
	err = tx.QueryRow(ctx, `SELECT coalesce((SELECT extversion FROM pg_catalog.pg_extension WHERE extname = $1), ''),
		coalesce((SELECT string_agg(lanname, ', ') FROM pg_catalog.pg_language
		          WHERE NOT lanpltrusted AND lanname NOT IN ('internal', 'c')), '')`, x.Name).Scan(&version, &untrusted)
	if err != nil || untrusted != "" {
		return version, untrusted, err
	}
	return version, "", tx.Commit(ctx)
}

// extensionObjects lists, for the extensions in the proof database, the
// relations whose contents pg_dump saves (pg_extension_config_dump) with
// their extension's name, and each extension's comment.
func extensionObjects(ctx context.Context, conn *pgx.Conn) (tables map[[2]string]string, sequences map[[2]string]bool, comments map[string]string, err error) {
	rows, _ := conn.Query(ctx, `SELECT e.extname::text, n.nspname::text, c.relname::text, c.relkind = 'S'
		FROM pg_catalog.pg_extension e CROSS JOIN LATERAL pg_catalog.unnest(e.extconfig) AS x(oid)
		JOIN pg_catalog.pg_class c ON c.oid = x.oid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace`)
	tables, sequences = map[[2]string]string{}, map[[2]string]bool{}
	var ext, schema, name string
	var seq bool
	_, err = pgx.ForEachRow(rows, []any{&ext, &schema, &name, &seq}, func() error {
		tables[[2]string{schema, name}] = ext
		sequences[[2]string{schema, name}] = seq
		return nil
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("list the extensions' configuration tables: %w", err)
	}
	rows, _ = conn.Query(ctx, `SELECT extname::text, pg_catalog.obj_description(oid, 'pg_extension') FROM pg_catalog.pg_extension
		WHERE pg_catalog.obj_description(oid, 'pg_extension') IS NOT NULL`)
	comments = map[string]string{}
	var comment string
	if _, err = pgx.ForEachRow(rows, []any{&ext, &comment}, func() error { comments[ext] = comment; return nil }); err != nil {
		return nil, nil, nil, fmt.Errorf("read the extensions' comments: %w", err)
	}
	return tables, sequences, comments, nil
}

// grantExtensionData lets the restoring role write the archive's rows into
// the extensions' configuration tables and set their sequences, and
// nothing more: INSERT on each table, UPDATE (setval) on each sequence
// that the archive fills. The tables are the local installation's,
// created by pgattest's superuser with their triggers and checks; the
// rows are the archive's, and whatever they fire runs as the restoring
// role, as every other row of the archive does. It returns each table's
// rows before the restore (what the local installation put there), so
// that the proof counts only the archive's.
func grantExtensionData(ctx context.Context, conn *pgx.Conn, restorer string, data []Entry, ext map[[2]string]string, rep *Report) (map[[2]string]int64, error) {
	var b strings.Builder
	var tables, sequences []string
	before := map[[2]string]int64{}
	role := pgx.Identifier{restorer}.Sanitize()
	for _, e := range data {
		key := [2]string{e.Schema, e.Name}
		rel := pgx.Identifier{e.Schema, e.Name}.Sanitize()
		what := fmt.Sprintf("%s.%s (%s)", e.Schema, e.Name, ext[key])
		if e.Type == "SEQUENCE SET" {
			fmt.Fprintf(&b, "GRANT UPDATE ON SEQUENCE %s TO %s;\n", rel, role)
			sequences = append(sequences, what)
			continue
		}
		fmt.Fprintf(&b, "GRANT INSERT ON TABLE %s TO %s;\n", rel, role)
		var n int64
		if err := conn.QueryRow(ctx, "SELECT pg_catalog.count(*) FROM ONLY "+rel).Scan(&n); err != nil {
			return nil, fmt.Errorf("count the rows of extension table %s: %w", what, err)
		}
		before[key] = n
		tables = append(tables, what)
	}
	if _, err := conn.Exec(ctx, b.String()); err != nil {
		return nil, fmt.Errorf("let the restoring role fill the extensions' configuration tables: %w", err)
	}
	var what []string
	if len(tables) > 0 {
		what = append(what, "INSERT on the extensions' configuration table"+plural(len(tables))+" "+strings.Join(tables, ", "))
	}
	if len(sequences) > 0 {
		what = append(what, "UPDATE (setval) on their sequence"+plural(len(sequences))+" "+strings.Join(sequences, ", "))
	}
	rep.Created = append(rep.Created, strings.Join(what, " and ")+
		" for the restoring role, and nothing more: the tables are the local installation's, the rows and values the archive's")
	return before, nil
}

// languages maps the proof database's procedural languages to whether they
// are trusted.
func languages(ctx context.Context, conn *pgx.Conn) (map[string]bool, error) {
	rows, _ := conn.Query(ctx, `SELECT lanname::text, lanpltrusted FROM pg_catalog.pg_language`)
	out := map[string]bool{}
	var name string
	var trusted bool
	_, err := pgx.ForEachRow(rows, []any{&name, &trusted}, func() error { out[name] = trusted; return nil })
	if err != nil {
		return nil, fmt.Errorf("list the proof database's languages: %w", err)
	}
	return out, nil
}

// ExtensionError: the proving Postgres has the extension but could not
// create it (a library it needs is missing, say).
type ExtensionError struct {
	Name, Server string
	Err          error
}

func (e *ExtensionError) Error() string {
	return fmt.Sprintf("the proving Postgres %s could not create extension %s: %v", e.Server, e.Name, e.Err)
}
func (e *ExtensionError) Unwrap() error     { return e.Err }
func (e *ExtensionError) Is(t error) bool   { return t == ErrMissingExtension }
func (e *ExtensionError) ProofFailed() bool { return true }

// restoreList writes the entries to restore to a pg_restore -L file in dir.
func restoreList(dir string, keep []Entry) (string, func(), error) {
	f, err := os.CreateTemp(dir, "proof-*.list")
	if err != nil {
		return "", nil, err
	}
	remove := func() { os.Remove(f.Name()) }
	_, err = f.Write(List(keep))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		remove()
		return "", nil, err
	}
	return f.Name(), remove, nil
}
