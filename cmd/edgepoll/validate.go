package main

// validateSafe holds the checks of "Safe by default" (cli.md): mistakes an
// operator makes without knowing a guard flag are refused (exit 2) before
// anything is polled.
func (c *CLI) validateSafe(n flagNamer) error {
	c.IlagentDB = expandIlagentDB(c.IlagentDB)
	return nil
}
