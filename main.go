// Command pgattest makes PostgreSQL backups that prove themselves.
package main

import (
	"context"
	"os"

	"github.com/pgattest/pgattest/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args, os.Stdout, os.Stderr))
}
