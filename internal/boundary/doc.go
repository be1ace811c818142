// Package boundary holds no code: its test checks the import boundaries that
// docs/architecture.md states in its "never" column, so that a change which
// crosses one fails `make unit` instead of waiting for a reviewer.
package boundary
