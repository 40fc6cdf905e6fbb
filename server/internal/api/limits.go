package api

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/broker"
	"github.com/tokenbroker/tokenbroker/server/internal/refusal"
)

// Bounds, in bytes, of the string inputs that are not a login's.
const (
	// MaxGroupLen bounds a group name.
	MaxGroupLen = 256
	// MaxTokenLen bounds a CARTO token given back to the broker; CARTO's
	// are JWTs of about 1 KiB.
	MaxTokenLen = 4096
	// MaxQueryNameLen bounds a named query's name.
	MaxQueryNameLen = 64
	// MaxParamLen bounds a supplied query parameter's value (its name is
	// bounded by defaultMaxLen).
	MaxParamLen = 4096
	// MaxParams bounds how many values one run may supply.
	MaxParams = 64
	// defaultMaxLen bounds a string field that maxLen does not list.
	defaultMaxLen = 256
)

// maxLen bounds every string field of every request, by the field's full
// name. A test checks that it lists each one.
var maxLen = map[protoreflect.FullName]int{
	"tokenbroker.v1.LoginRequest.username":          auth.MaxUsernameLen,
	"tokenbroker.v1.LoginRequest.password":          auth.MaxPasswordLen,
	"tokenbroker.v1.IssueCartoTokenRequest.group":   MaxGroupLen,
	"tokenbroker.v1.RevokeTokenRequest.carto_token": MaxTokenLen,
	"tokenbroker.v1.RevokeTokenRequest.group":       MaxGroupLen,
	"tokenbroker.v1.ListTokensRequest.group":        MaxGroupLen,
	// A named query's name, and the values a caller supplies to it (each
	// parameter's declaration bounds it further).
	"tokenbroker.v1.RunQueryRequest.name":                     MaxQueryNameLen,
	"tokenbroker.v1.RunQueryRequest.ParamsEntry.key":          defaultMaxLen,
	"tokenbroker.v1.RunQueryGeoJSONRequest.ParamsEntry.key":   defaultMaxLen,
	"tokenbroker.v1.RunQueryRequest.ParamsEntry.value":        MaxParamLen,
	"tokenbroker.v1.RunQueryGeoJSONRequest.name":              MaxQueryNameLen,
	"tokenbroker.v1.RunQueryGeoJSONRequest.ParamsEntry.value": MaxParamLen,
}

// checkLengths refuses a request with a string (or bytes) field over its
// bound, naming the field and the bound but never echoing the value. It runs
// before any work of the call: no counter, no bcrypt, no store, no audit
// line holds the oversized value.
func checkLengths(req proto.Message) error {
	return checkMessage(req.ProtoReflect())
}

func checkMessage(m protoreflect.Message) (err error) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				err = checkValue(fd.MapKey(), k.Value())
				if err == nil {
					err = checkValue(fd.MapValue(), mv)
				}
				return err == nil
			})
		case fd.IsList():
			for i := range v.List().Len() {
				if err = checkValue(fd, v.List().Get(i)); err != nil {
					break
				}
			}
		default:
			err = checkValue(fd, v)
		}
		return err == nil
	})
	return err
}

func checkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	var n int
	switch fd.Kind() {
	case protoreflect.StringKind:
		n = len(v.String())
	case protoreflect.BytesKind:
		n = len(v.Bytes())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return checkMessage(v.Message())
	default:
		return nil
	}
	limit, ok := maxLen[fd.FullName()]
	if !ok {
		limit = defaultMaxLen
	}
	if n > limit {
		return refusal.Newf(broker.ErrInvalidArgument, "%s is longer than %d bytes", fd.Name(), limit)
	}
	return nil
}
