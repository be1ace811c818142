package metrics

import (
	"fmt"
	"strings"
)

// Markers around the generated part of docs/metrics.md.
const (
	DocBegin = "<!-- BEGIN GENERATED from internal/metrics/table.go; update with: go test ./internal/metrics -update -->"
	DocEnd   = "<!-- END GENERATED -->"
)

// components are the sections of the generated reference, in order.
func components() [][2]string {
	return [][2]string{
		{"process", "Every process"},
		{"worker", "Workers (`hoard worker`, `hoard dev`, and the embedded cache of `hoard mount` and `hoard mounter`)"},
		{"mount", "Mounts (`hoard mounter`: one `volume` per staged volume; `hoard mount`: its mount point)"},
		{"csi", "CSI plugins (`hoard csi`, controller and node)"},
		{"coordinator", "The coordinator (`hoard coordinator`, `hoard dev`)"},
	}
}

// Markdown is the metric reference, one table per component, as
// docs/metrics.md holds it between DocBegin and DocEnd.
func Markdown() string {
	var b strings.Builder
	for _, c := range components() {
		fmt.Fprintf(&b, "\n### %s\n\n", c[1])
		b.WriteString("| metric | type | labels | meaning |\n|---|---|---|---|\n")
		for _, id := range All() {
			d := table[id]
			if d.Component != c[0] {
				continue
			}
			labels := "-"
			if len(d.Labels) > 0 {
				labels = "`" + strings.Join(d.Labels, "`, `") + "`"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", d.Name, d.Type, labels, strings.ReplaceAll(d.Help, "|", "\\|"))
		}
	}
	return b.String()
}
