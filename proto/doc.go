// Package proto holds swimring's .proto files and their generated Go code, which is
// committed so that a plain `go build` needs no code generator.
//
// Regenerate after editing a .proto with:
//
//	go generate ./proto
//
// which runs gen.sh (it says which tools it needs and at which versions).
package proto

//go:generate ./gen.sh
