package crypto

import (
	"bytes"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	b, err := NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Seal("client-secret", "idp:1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s, "client-secret") {
		t.Fatal("plaintext visible in ciphertext")
	}
	got, err := b.Open(s, "idp:1")
	if err != nil || got != "client-secret" {
		t.Fatalf("open = %q, %v", got, err)
	}
	if _, err := b.Open(s, "idp:2"); err == nil {
		t.Fatal("ciphertext opened under other associated data")
	}
	other, _ := NewBox(bytes.Repeat([]byte{8}, 32))
	if _, err := other.Open(s, "idp:1"); err == nil {
		t.Fatal("ciphertext opened under other key")
	}
	if _, err := NewBox([]byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
}
