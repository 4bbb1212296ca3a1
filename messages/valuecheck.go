package messages

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrBadValue is wrapped by every Encoding.CheckValue error.
var ErrBadValue = errors.New("not a record of its topic")

// checkValue is the part of every Encoding.CheckValue that does not depend
// on the shape, then shape: the value must be valid UTF-8 JSON with nothing
// after it, and not the placeholder of an event that could not be encoded
// (AppendUnencodable), which is refused with its own reason. Unknown fields
// are allowed (a newer writer may add some). Errors wrap ErrBadValue and
// say what is wrong in an operator's terms.
func checkValue(value []byte, shape func(bad badFunc, trimmed []byte) error) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadValue, fmt.Sprintf(format, args...))
	}
	trimmed := bytes.TrimSpace(value)
	switch {
	case len(trimmed) == 0:
		return bad("the value is empty")
	case !utf8.Valid(value):
		return bad("the value is not UTF-8 text")
	case !json.Valid(value):
		return bad("the value is not JSON")
	case IsUnencodable(value):
		return bad("the entry holds no record, only why the event could not be encoded; fix the event at its source and discard the entry")
	}
	return shape(bad, trimmed)
}

// badFunc builds an ErrBadValue error.
type badFunc = func(format string, args ...any) error

// checkMessage checks a hobom.messages record value (MessageEncoding).
func checkMessage(bad badFunc, trimmed []byte) error {
	if trimmed[0] != '{' {
		return bad("a %s entry must be one JSON object, not %s", "message", jsonKind(trimmed))
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &obj); err != nil {
		return bad("the value is not a JSON object")
	}
	return checkFields(bad, "", obj, []string{"type", "title", "body", "recipient"}, []string{"senderId", "sentAt"}, true)
}

// checkLogArray checks a hobom.logs record value (LogArrayEncoding).
func checkLogArray(bad badFunc, trimmed []byte) error {
	if trimmed[0] != '[' {
		return bad("a log entry must be a JSON array of log objects, not %s", jsonKind(trimmed))
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(trimmed, &arr); err != nil {
		return bad("the value is not a JSON array")
	}
	if len(arr) == 0 {
		return bad("the log array is empty")
	}
	for i, el := range arr {
		el = bytes.TrimSpace(el)
		if len(el) == 0 || el[0] != '{' {
			return bad("element %d of the log array is %s, not an object", i, jsonKind(el))
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(el, &obj); err != nil {
			return bad("element %d of the log array is not an object", i)
		}
		where := fmt.Sprintf("element %d: ", i)
		if err := checkFields(bad, where, obj, []string{"serviceType", "level"}, []string{"traceId", "message", "httpMethod", "path", "host", "userId"}, false); err != nil {
			return err
		}
		if v, ok := obj["statusCode"]; ok && jsonKind(v) != "a number" {
			return bad("%sstatusCode is %s, not a number", where, jsonKind(v))
		}
		if v, ok := obj["payload"]; ok && jsonKind(v) != "an object" {
			return bad("%spayload is %s, not an object", where, jsonKind(v))
		}
	}
	return nil
}

// checkFields checks required and optional string fields of obj;
// nonEmptyFirst requires the first required field to be a non-empty string.
func checkFields(bad badFunc, where string, obj map[string]json.RawMessage, required, optional []string, nonEmptyFirst bool) error {
	for i, f := range required {
		v, ok := obj[f]
		if !ok {
			return bad("%sthe field %s is missing", where, f)
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return bad("%sthe field %s is %s, not a string", where, f, jsonKind(v))
		}
		if i == 0 && nonEmptyFirst && s == "" {
			return bad("%sthe field %s is empty", where, f)
		}
	}
	for _, f := range optional {
		if v, ok := obj[f]; ok {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return bad("%sthe field %s is %s, not a string", where, f, jsonKind(v))
			}
		}
	}
	return nil
}

// jsonKind names the kind of a JSON value for error messages.
func jsonKind(v []byte) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
