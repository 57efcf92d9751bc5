// Package membership is swimring's SWIM membership layer on
// github.com/hashicorp/memberlist: join, graceful leave, failure detection,
// partition healing, node metadata, encryption and discovery.
package membership
