package redisdlq

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	// KeyPrefix starts every DLQ key (docs/contract.md §3). Keys outside it are
	// never read, listed or deleted here, so the management API cannot be
	// used to reach other Redis data.
	KeyPrefix = "dlq:"
	// MaxKeyLen bounds keys and list prefixes. Real keys are a short name
	// and a UUID; the bound keeps hostile input from costing Redis memory or
	// log space.
	MaxKeyLen = 512
	// globMeta are the characters SCAN's MATCH gives a meaning to.
	globMeta = `*?[]\`
)

var (
	// ErrInvalidKey is wrapped by every error about a malformed DLQ key.
	ErrInvalidKey = errors.New("invalid DLQ key")
	// ErrInvalidPrefix is wrapped by every error about a malformed list
	// prefix.
	ErrInvalidPrefix = errors.New("invalid DLQ prefix")
)

// ParseKey splits a DLQ key "dlq:<name>:<eventId>" into its prefix
// "dlq:<name>:" and the eventId. The old service wrote "dlq:<name>::<eventId>"
// (a doubled colon); that form yields the same prefix and eventId, so old
// entries are read and replayed as the event they belong to. The name ends at
// the first colon, so an eventId may itself contain colons, but not start
// with one once the legacy colon is removed: "dlq:menu:::e1" is rejected as
// ambiguous. Keys longer than MaxKeyLen bytes, not valid UTF-8, or holding a
// character that is not printable (control, format and non-ASCII space
// characters; the ASCII space is allowed) are rejected too. Errors wrap
// ErrInvalidKey.
func ParseKey(key string) (prefix, eventID string, err error) {
	if len(key) > MaxKeyLen {
		return "", "", fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrInvalidKey, len(key), MaxKeyLen)
	}
	if !strings.HasPrefix(key, KeyPrefix) {
		return "", "", fmt.Errorf("%w: %q does not start with %q", ErrInvalidKey, key, KeyPrefix)
	}
	if err := checkPrintable(key); err != nil {
		return "", "", fmt.Errorf("%w: %q: %v", ErrInvalidKey, key, err)
	}
	name, id, ok := strings.Cut(key[len(KeyPrefix):], ":")
	switch {
	case !ok:
		return "", "", fmt.Errorf("%w: %q has no ':' between name and eventId (want %s<name>:<eventId>)", ErrInvalidKey, key, KeyPrefix)
	case name == "":
		return "", "", fmt.Errorf("%w: %q has an empty name (want %s<name>:<eventId>)", ErrInvalidKey, key, KeyPrefix)
	}
	id = strings.TrimPrefix(id, ":") // the old service's doubled colon
	switch {
	case id == "":
		return "", "", fmt.Errorf("%w: %q has an empty eventId", ErrInvalidKey, key)
	case strings.HasPrefix(id, ":"):
		return "", "", fmt.Errorf("%w: %q has more than two colons after the name", ErrInvalidKey, key)
	}
	return KeyPrefix + name + ":", id, nil
}

// ValidPrefix checks a prefix that lists DLQ keys (GET /dlq?prefix=...). It
// must start with "dlq:" (so listing never leaves the DLQ), be at most
// MaxKeyLen bytes of printable UTF-8, and hold none of the glob
// metacharacters * ? [ ] \ : the prefix becomes a SCAN MATCH pattern, and
// rejecting them (rather than escaping) keeps that pattern a plain prefix
// match; no DLQ key contains them. Errors wrap ErrInvalidPrefix.
func ValidPrefix(prefix string) error {
	if len(prefix) > MaxKeyLen {
		return fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrInvalidPrefix, len(prefix), MaxKeyLen)
	}
	if !strings.HasPrefix(prefix, KeyPrefix) {
		return fmt.Errorf("%w: %q does not start with %q", ErrInvalidPrefix, prefix, KeyPrefix)
	}
	if err := checkPrintable(prefix); err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidPrefix, prefix, err)
	}
	if i := strings.IndexAny(prefix, globMeta); i >= 0 {
		return fmt.Errorf("%w: %q contains %q, a pattern character (none of %s is allowed)", ErrInvalidPrefix, prefix, prefix[i], globMeta)
	}
	return nil
}

// PrefixPattern returns the SCAN MATCH pattern listing the keys that start
// with prefix, after checking it with ValidPrefix.
func PrefixPattern(prefix string) (string, error) {
	if err := ValidPrefix(prefix); err != nil {
		return "", err
	}
	return prefix + "*", nil
}

// checkPrintable rejects invalid UTF-8 and characters that are not
// printable: they cannot come from a real eventId and would garble logs and
// operators' terminals.
func checkPrintable(s string) error {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				return fmt.Errorf("invalid UTF-8 at byte %d", i)
			}
		}
		if !unicode.IsPrint(r) {
			return fmt.Errorf("non-printable character %U at byte %d", r, i)
		}
	}
	return nil
}
