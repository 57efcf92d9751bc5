// Package proto holds swimring's .proto files and their generated Go code.
package proto
