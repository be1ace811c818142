package membership

import (
	"fmt"
	"testing"
)

// TestWeightBounded (issue 11, finding 7): a registration claiming a huge
// weight, which would own every chunk, is refused; MaxWeight is accepted.
func TestWeightBounded(t *testing.T) {
	for _, w := range []string{"1e9", "16.5", "-1"} {
		if m, err := decodeMember("rogue", []byte(fmt.Sprintf(`{"id":"rogue","addr":"10.0.0.1:7070","weight":%s}`, w))); err == nil {
			t.Errorf("weight %s accepted: %+v", w, m)
		}
	}
	if _, err := decodeMember("big", []byte(`{"id":"big","addr":"10.0.0.1:7070","weight":16}`)); err != nil {
		t.Errorf("weight 16 refused: %v", err)
	}
}
