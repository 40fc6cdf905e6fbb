package policy

import "testing"

// BenchmarkFor: a group's policy on the hit path, named and by default
// (memoised), and a render (what the memo saves).
func BenchmarkFor(b *testing.B) {
	ref := Reference()
	s, err := NewSet(SetConfig{Groups: map[string]Template{"BOSTON": ref}, Default: &ref})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("named group", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = s.For("BOSTON")
		}
	})
	b.Run("default policy", func(b *testing.B) {
		_, _ = s.For("NEW YORK")
		b.ReportAllocs()
		for b.Loop() {
			_, _ = s.For("NEW YORK")
		}
	})
	b.Run("render", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = ref.Render("NEW YORK")
		}
	})
}
