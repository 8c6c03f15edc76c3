package pipeline

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgservicefile"
	"github.com/pgattest/pgattest/testenv"
)

// A child that connects (pg_dump to the source, pg_restore to a target) is
// sent to what pgattest resolved and checked, never to what its own
// reading of the environment would find: libpq reads variables and files
// that pgx does not (PGHOSTADDR, a service file's hostaddr, PGSYSCONFDIR,
// PGREQUIRESSL …), so a child left to read them could connect elsewhere
// than the server whose identity was checked. pgattest resolves the
// connection as pgx does (variables, then the service, then the string),
// connects, and gives the child every setting whole on its command line,
// pinned to the address that answered; the child's environment holds no
// PG* variable of the caller's, only the password (testenv.ToolEnv).

// libpqEnv are the variables pgx reads and the keyword each stands for
// (pgconn's parseEnvSettings): the settings pgattest resolves, then hands on.
var libpqEnv = map[string]string{
	"PGHOST": "host", "PGPORT": "port", "PGDATABASE": "dbname", "PGUSER": "user",
	"PGPASSWORD": "password", "PGPASSFILE": "passfile", "PGAPPNAME": "application_name",
	"PGCONNECT_TIMEOUT": "connect_timeout", "PGSSLMODE": "sslmode", "PGSSLKEY": "sslkey",
	"PGSSLCERT": "sslcert", "PGSSLCERTMODE": "sslcertmode", "PGSSLSNI": "sslsni",
	"PGSSLROOTCERT": "sslrootcert", "PGSSLPASSWORD": "sslpassword", "PGSSLNEGOTIATION": "sslnegotiation",
	"PGTARGETSESSIONATTRS": "target_session_attrs", "PGSERVICE": "service", "PGSERVICEFILE": "servicefile",
	"PGTZ": "timezone", "PGOPTIONS": "options", "PGMINPROTOCOLVERSION": "min_protocol_version",
	"PGMAXPROTOCOLVERSION": "max_protocol_version", "PGCHANNELBINDING": "channel_binding",
	"PGREQUIREAUTH": "require_auth",
}

// notHandedOn are settings a child never gets on its command line: secrets
// (the password goes in its environment), where to find more settings
// (resolved already), and the hosts, replaced by the one that answered.
var notHandedOn = map[string]bool{
	"password": true, "passfile": true, "sslpassword": true, "service": true, "servicefile": true,
	"host": true, "hostaddr": true, "port": true, "dbname": true, "user": true, "timezone": true,
}

// resolveSettings merges the settings as pgx does: the variables, then the
// service's (when one is named), then the connection string's own.
func resolveSettings(ci *ConnInfo) (map[string]string, error) {
	canon := func(k string) string {
		if k == "database" {
			return "dbname"
		}
		return k
	}
	fromEnv := map[string]string{}
	for env, key := range libpqEnv {
		if v := os.Getenv(env); v != "" {
			fromEnv[key] = v
		}
	}
	fromString := map[string]string{}
	for _, p := range ci.params {
		fromString[canon(p[0])] = p[1]
	}
	settings := map[string]string{}
	merge := func(m map[string]string) {
		for k, v := range m {
			settings[k] = v
		}
	}
	merge(fromEnv)
	merge(fromString)
	if svc := settings["service"]; svc != "" {
		file := settings["servicefile"]
		if file == "" {
			home, _ := os.UserHomeDir()
			file = filepath.Join(home, ".pg_service.conf")
		}
		sf, err := pgservicefile.ReadServicefile(file)
		if err != nil {
			return nil, fmt.Errorf("read the service file %s: %w", file, err)
		}
		s, err := sf.GetService(svc)
		if err != nil {
			return nil, fmt.Errorf("service %q: %w", svc, err)
		}
		settings = map[string]string{}
		merge(fromEnv)
		for k, v := range s.Settings {
			settings[canon(k)] = v
		}
		merge(fromString)
	}
	return settings, nil
}

// childConnInfo is what a child connects with: the resolved settings but
// for those notHandedOn, the host and port that answered (and, over TCP,
// the address itself: a name resolved again could lead elsewhere), the
// database and user as the server named them.
func childConnInfo(settings map[string]string, host string, port int, addr net.Addr, database, user string) string {
	kv := [][2]string{{"host", host}}
	if tcp, ok := addr.(*net.TCPAddr); ok && !strings.HasPrefix(host, "/") {
		kv = append(kv, [2]string{"hostaddr", tcp.IP.String()})
	}
	kv = append(kv, [2]string{"port", strconv.Itoa(port)}, [2]string{"dbname", database}, [2]string{"user", user})
	var keys []string
	for k := range settings {
		if !notHandedOn[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		kv = append(kv, [2]string{k, settings[k]})
	}
	if settings["application_name"] == "" {
		kv = append(kv, [2]string{"application_name", "pgattest"})
	}
	return testenv.KeyValue(kv)
}
