// Package test holds swimring's multi-process integration and chaos tests.
package test
