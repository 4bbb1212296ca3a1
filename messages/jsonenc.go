package messages

import (
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// This file holds the JSON primitives behind the record encoders. They are
// written by hand, not with encoding/json, because the relay encodes every
// outbox row of every poll: reflection and the intermediate structs and maps
// would cost allocations per event. The output stays byte for byte what
// encoding/json.Marshal writes for the same values, so the standard encoder
// is an exact reference for the tests and consumers see conventional JSON.

const hexDigits = "0123456789abcdef"

// jsonSafe reports the ASCII bytes that encoding/json copies into a string
// unchanged with HTML escaping on (its htmlSafeSet): printable ASCII except
// the quote, the backslash and <, > and &. DEL (0x7f) is copied unchanged.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = true
	}
	for _, b := range `"\<>&` {
		t[b] = false
	}
	return t
}()

// appendJSONString appends s as a JSON string to dst, producing exactly the
// bytes of encoding/json.Marshal(s): HTML-sensitive <, > and & become \u003c,
// \u003e and \u0026; U+2028 and U+2029 are escaped because JavaScript (JSONP)
// treats them as line ends; control characters get the short escapes
// \b \f \n \r \t or \u00XX; each byte of invalid UTF-8 becomes \ufffd.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending, to be copied unchanged
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if jsonSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default: // other controls, <, > and &
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// mapEntry is one key and value of a map being encoded.
type mapEntry struct{ key, value string }

// mapScratch pools the slices that appendStringMap sorts map entries in, so
// that encoding a map allocates nothing once the pool is warm.
var mapScratch = sync.Pool{New: func() any { return new([]mapEntry) }}

// maxPooledEntries bounds the scratch slices put back in mapScratch, so that
// one huge map does not keep a huge slice alive.
const maxPooledEntries = 1024

// appendStringMap appends m as a JSON object with its keys in the order
// encoding/json uses for maps (ascending byte order), so that the same event
// always encodes to the same bytes. A nil or empty map is {}.
func appendStringMap(dst []byte, m map[string]string) []byte {
	sp := mapScratch.Get().(*[]mapEntry)
	entries := (*sp)[:0]
	for k, v := range m {
		entries = append(entries, mapEntry{k, v})
	}
	slices.SortFunc(entries, func(a, b mapEntry) int { return strings.Compare(a.key, b.key) })

	dst = append(dst, '{')
	for i, e := range entries {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, e.key)
		dst = append(dst, ':')
		dst = appendJSONString(dst, e.value)
	}
	dst = append(dst, '}')

	if cap(entries) <= maxPooledEntries {
		clear(entries) // do not keep the caller's strings reachable from the pool
		*sp = entries[:0]
		mapScratch.Put(sp)
	}
	return dst
}

// endObject closes a JSON object whose members may each be omitted. The
// caller records start := len(dst), appends every present member with a
// leading comma (,"key":value), then calls endObject, which turns the first
// comma into the opening brace, or appends {} when no member was written.
// This keeps omitempty logic free of "is this the first member" state.
func endObject(dst []byte, start int) []byte {
	if len(dst) == start {
		return append(dst, '{', '}')
	}
	dst[start] = '{'
	return append(dst, '}')
}
