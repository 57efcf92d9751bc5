package swimring

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/swimring/swimring/membership"
)

// markKeyInfo is HKDF's info for the forward mark keys: a gossip key and the mark
// key derived from it are never the same bytes used for two purposes.
const markKeyInfo = "swimring forward mark"

// markKeysFrom derives the forward mark keys from the gossip keys, in their order
// (the first signs). The gossip keys are the cluster's shared secret: marks signed
// with keys derived from them prove a call comes from a node of the cluster.
func markKeysFrom(secret [][]byte) ([][]byte, error) {
	out := make([][]byte, 0, len(secret))
	for _, k := range secret {
		mk, err := hkdf.Key(sha256.New, k, nil, markKeyInfo, 32)
		if err != nil {
			return nil, fmt.Errorf("deriving the mark key: %w", err)
		}
		out = append(out, mk)
	}
	return out, nil
}

// KeyFingerprint names a secret key without revealing it: the first 8 bytes of its
// SHA-256, in hex. The admin service and swimring keys show keys by it.
func KeyFingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// Keys returns copies of this node's secret keys (the gossip keys), the primary
// first; nil when the node was created without SecretKeys.
func (n *Node) Keys() [][]byte { return n.ml.Keys() }

// InstallKey adds key to this node's secret keys: from now on the node accepts
// gossip encrypted with it and forward marks signed with the mark key derived from
// it, and keeps encrypting and signing with its primary key. A key already installed
// is left as it is.
//
// Live key rotation is three steps, each done on every node before the next one
// starts (swimring keys install|use|remove does a step on every member): InstallKey
// the new key; UseKey it, once every node has it; RemoveKey the old one, once every
// node uses the new one. The keys change in memory only: update the nodes' key files
// (or Config.SecretKeys) too, or a restart brings the old keys back.
//
// The mark keys follow unless Config.Forward.MarkKeys was set (then they are the
// caller's, and stay as they are). Errors wrap ErrNoEncryption (a node created
// without SecretKeys: memberlist cannot turn encryption on in a running node) or
// ErrInvalidKey (not 16, 24 or 32 bytes).
func (n *Node) InstallKey(key []byte) error {
	switch len(key) {
	case 16, 24, 32:
	default:
		return fmt.Errorf("%w: %d bytes, want 16, 24 or 32 (AES-128, -192 or -256)", ErrInvalidKey, len(key))
	}
	return n.changeKeys("install", key, func([][]byte) error {
		return n.ml.AddKey(key)
	})
}

// UseKey makes an installed key the primary one: this node encrypts its gossip and
// signs its forward marks with it from now on. Do it only once every node has the key
// installed (see InstallKey), or the nodes without it stop hearing this one. Errors
// wrap ErrNoEncryption or ErrUnknownKey (key not installed).
func (n *Node) UseKey(key []byte) error {
	return n.changeKeys("use", key, func(installed [][]byte) error {
		if !slices.ContainsFunc(installed, func(k []byte) bool { return bytes.Equal(k, key) }) {
			return fmt.Errorf("%w: key %s (install it first)", ErrUnknownKey, KeyFingerprint(key))
		}
		return n.ml.UseKey(key)
	})
}

// RemoveKey removes a key from this node: gossip encrypted with it and marks signed
// with its mark key are refused from now on. Do it only once no node uses the key as
// its primary any more (see InstallKey). Removing a key that is not installed does
// nothing, so that a rotation step can be run again on every node. Errors wrap
// ErrNoEncryption or ErrPrimaryKey (key is the primary: UseKey another first).
func (n *Node) RemoveKey(key []byte) error {
	return n.changeKeys("remove", key, func(installed [][]byte) error {
		if bytes.Equal(installed[0], key) {
			return fmt.Errorf("%w: key %s is the primary: make another key the primary first (UseKey)", ErrPrimaryKey, KeyFingerprint(key))
		}
		return n.ml.RemoveKey(key)
	})
}

// changeKeys applies change to the gossip keyring and then derives the mark keys
// from the keyring anew, all under keyMu. change gets the keys installed before it.
func (n *Node) changeKeys(op string, key []byte, change func(installed [][]byte) error) error {
	n.keyMu.Lock()
	defer n.keyMu.Unlock()
	installed := n.ml.Keys()
	if len(installed) == 0 {
		return fmt.Errorf("%w: cannot %s a key on a node created without SecretKeys (gossip encryption cannot be turned on in a running node: restart it with keys)", ErrNoEncryption, op)
	}
	if err := change(installed); err != nil {
		switch {
		case errors.Is(err, ErrUnknownKey), errors.Is(err, ErrPrimaryKey):
			return err
		case errors.Is(err, membership.ErrNoEncryption):
			return fmt.Errorf("%w: %w", ErrNoEncryption, err)
		}
		return fmt.Errorf("swimring: %s key %s: %w", op, KeyFingerprint(key), err)
	}
	if n.derivedMarks {
		mk, err := markKeysFrom(n.ml.Keys())
		if err == nil {
			err = n.fwd.SetMarkKeys(mk)
		}
		if err != nil {
			// The gossip keyring changed and the mark keys did not: say so loudly.
			n.log.Error("secret keys changed but the forward mark keys could not follow", "op", op, "err", err)
			return fmt.Errorf("swimring: %s key %s: the mark keys did not follow: %w", op, KeyFingerprint(key), err)
		}
	}
	n.log.Info("secret keys changed", "op", op, "key", KeyFingerprint(key), "primary", KeyFingerprint(n.ml.Keys()[0]))
	return nil
}
