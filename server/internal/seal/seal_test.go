package seal

import (
	"bytes"
	"errors"
	"testing"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestSealOpen(t *testing.T) {
	box, err := New(key(1))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New(key(2))
	sealed := box.Seal([]byte("the token"), []byte("record-1"))
	if bytes.Contains(sealed, []byte("the token")) {
		t.Fatal("plaintext visible in the sealed value")
	}
	if again := box.Seal([]byte("the token"), []byte("record-1")); bytes.Equal(again, sealed) {
		t.Fatal("two seals of one value are equal: the nonce repeats")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	tests := []struct {
		name  string
		box   *Box
		value []byte
		aad   string
		want  error
	}{
		{"same key", box, sealed, "record-1", nil},
		{"other key", other, sealed, "record-1", ErrWrongKey},
		{"other record", box, sealed, "record-2", ErrCorrupt},
		{"tampered", box, tampered, "record-1", ErrCorrupt},
		{"truncated", box, sealed[:10], "record-1", ErrCorrupt},
		{"empty", box, nil, "record-1", ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := tt.box.Open(tt.value, []byte(tt.aad))
			if !errors.Is(err, tt.want) || (err == nil && string(pt) != "the token") {
				t.Fatalf("Open = %q, %v; want %v", pt, err, tt.want)
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	for _, s := range []string{
		"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", // std, padded
		"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE",  // std, raw
		" AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n",
	} {
		k, err := ParseKey(s)
		if err != nil || !bytes.Equal(k, key(1)) {
			t.Errorf("ParseKey(%q) = %x, %v", s, k, err)
		}
	}
	for _, s := range []string{"", "not base64!", "AQEB"} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) accepted", s)
		}
	}
	if _, err := New(key(1)[:16]); err == nil {
		t.Error("New accepted a 16-byte key")
	}
}
