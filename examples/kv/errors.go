package kv

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors. Every error the server produces wraps one of them (errors.Is); the
// gRPC status it is sent as carries the wrapped message and the code given below.
var (
	// ErrEmptyKey: a request without a key (InvalidArgument).
	ErrEmptyKey = errors.New("kv: empty key")
	// ErrKeyTooLarge: a key longer than Config.MaxKeySize (InvalidArgument).
	ErrKeyTooLarge = errors.New("kv: key too large")
	// ErrValueTooLarge: a value longer than Config.MaxValueSize (InvalidArgument).
	ErrValueTooLarge = errors.New("kv: value too large")
	// ErrInvalidEntry: a peer sent an entry that cannot be stored: no version, a
	// tombstone with a value, a version from too far in the future (InvalidArgument).
	ErrInvalidEntry = errors.New("kv: invalid entry")
	// ErrNotFound: the key does not exist or was deleted (NotFound).
	ErrNotFound = errors.New("kv: key not found")
	// ErrNotEnoughReplicas: a write reached fewer than W replicas, or a read reached
	// too few to say that a key does not exist (Unavailable). A failed write may still
	// have reached some replicas: it is not acknowledged, and may or may not survive.
	ErrNotEnoughReplicas = errors.New("kv: not enough replicas")
	// ErrNotReplica: a Watch reached a node that does not replicate the key; watch
	// through the owner (FailedPrecondition).
	ErrNotReplica = errors.New("kv: this node does not replicate the key")
	// ErrKeyMoved: the node stopped replicating a watched key; watch again (Unavailable).
	ErrKeyMoved = errors.New("kv: key moved to other replicas")
	// ErrClosed: the server is closed (Unavailable).
	ErrClosed = errors.New("kv: server closed")
	// ErrInvalidConfig: Config is unusable.
	ErrInvalidConfig = errors.New("kv: invalid config")
)

// toStatus turns an error of this package into a gRPC status error with the code its
// sentinel documents. Errors that already are statuses (from a peer) pass through.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, ErrEmptyKey), errors.Is(err, ErrKeyTooLarge),
		errors.Is(err, ErrValueTooLarge), errors.Is(err, ErrInvalidEntry):
		code = codes.InvalidArgument
	case errors.Is(err, ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, ErrNotEnoughReplicas), errors.Is(err, ErrKeyMoved), errors.Is(err, ErrClosed):
		code = codes.Unavailable
	case errors.Is(err, ErrNotReplica):
		code = codes.FailedPrecondition
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}
