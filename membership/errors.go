package membership

import "errors"

// Sentinel errors. Errors returned by this package wrap them with %w; test
// with errors.Is.
var (
	// ErrInvalidConfig: Config.Validate (and New) found a bad field.
	ErrInvalidConfig = errors.New("membership: invalid config")
	// ErrClosed: the Membership has left the cluster or been closed.
	ErrClosed = errors.New("membership: closed")
	// ErrMetadataTooLarge: the encoded node metadata (ID, gRPC address,
	// labels...) exceeds memberlist.MetaMaxSize (512 bytes).
	ErrMetadataTooLarge = errors.New("membership: node metadata too large")
	// ErrBadMetadata: a peer's metadata could not be decoded.
	ErrBadMetadata = errors.New("membership: malformed node metadata")
	// ErrIncompatible: a peer runs another protocol version or ring
	// configuration (RingFingerprint); it is refused.
	ErrIncompatible = errors.New("membership: incompatible peer")
	// ErrNoEncryption: a keyring operation on a Membership started without
	// SecretKeys (memberlist cannot turn encryption on at runtime).
	ErrNoEncryption = errors.New("membership: encryption not enabled (set Config.SecretKeys)")
	// ErrJoin: Join could not reach any seed before its context ended.
	ErrJoin = errors.New("membership: join failed")
	// ErrRefused: every seed that answered refused this node, round after round
	// (another cluster name, gossip key, ring configuration or protocol): retrying
	// cannot help. It wraps ErrJoin; the message says why.
	ErrRefused = errors.New("membership: refused by the cluster")
)
