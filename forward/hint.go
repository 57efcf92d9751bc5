package forward

import (
	"fmt"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	swimringv1 "github.com/swimring/swimring/proto/swimring/v1"
)

// RefusedCode is the status code of a call refused under the Refuse policy. It is
// Unavailable because the call did not run and may be retried elsewhere, which is what
// clients and grpc retry policies already do with Unavailable. The refusal is told apart
// from an owner's own Unavailable by its swimringv1.OwnerHint detail.
const RefusedCode = codes.Unavailable

// refusal builds the status a node returns when it refuses a forwarded call.
func refusal(method string, h *swimringv1.OwnerHint) error {
	st := status.Newf(RefusedCode, "swimring: %s: node %s does not own the key by its ring (owner %s); retry there",
		method, h.GetRefusedBy(), h.GetOwnerId())
	if d, err := st.WithDetails(h); err == nil {
		st = d
	}
	return st.Err()
}

// OwnerHintFromError returns the OwnerHint carried by a refusal, or nil when err is
// not one. Clients that talk to nodes directly can use it to retry on the owner.
func OwnerHintFromError(err error) *swimringv1.OwnerHint {
	st, ok := status.FromError(err)
	if !ok || st.Code() != RefusedCode {
		return nil
	}
	h, _ := ownerHintFromStatus(st.Proto())
	return h
}

var ownerHintURL = "type.googleapis.com/" + string((&swimringv1.OwnerHint{}).ProtoReflect().Descriptor().FullName())

// ownerHintFromStatus finds and decodes the OwnerHint detail of a status received
// from the network (untrusted). It returns nil, nil when there is none.
func ownerHintFromStatus(st *spb.Status) (*swimringv1.OwnerHint, error) {
	for _, d := range st.GetDetails() {
		if d.GetTypeUrl() != ownerHintURL {
			continue
		}
		h := &swimringv1.OwnerHint{}
		if err := proto.Unmarshal(d.GetValue(), h); err != nil {
			return nil, fmt.Errorf("forward: bad OwnerHint detail: %w", err)
		}
		if h.GetOwnerId() == "" {
			return nil, fmt.Errorf("forward: OwnerHint without an owner")
		}
		return h, nil
	}
	return nil, nil
}

// decodeStatusDetails decodes a grpc-status-details-bin payload and its hint; it is
// what the fuzz test drives.
func decodeStatusDetails(b []byte) (*swimringv1.OwnerHint, error) {
	st := &spb.Status{}
	if err := proto.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("forward: bad status details: %w", err)
	}
	return ownerHintFromStatus(st)
}
