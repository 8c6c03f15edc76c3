package cli

import (
	"errors"

	ucli "github.com/urfave/cli/v2"
)

func demoCommand(e *env) *ucli.Command {
	return &ucli.Command{
		Name:  "demo",
		Usage: "run the whole pipeline on a throwaway sample database",
		Action: func(c *ucli.Context) error {
			return withHint(errors.New("demo is not built yet"),
				"it arrives with the backup pipeline; 'go tool task test' runs what exists today")
		},
	}
}
