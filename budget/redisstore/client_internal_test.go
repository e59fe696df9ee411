package redisstore

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOpaqueErrorHidesRetriableCauses: the cluster client retries an
// error whose chain holds io.EOF or a net.Error; after opaqueError it
// finds neither, and a timeout is still a deadline.
func TestOpaqueErrorHidesRetriableCauses(t *testing.T) {
	err := opaqueError(io.ErrUnexpectedEOF)
	assert.False(t, errors.Is(err, io.ErrUnexpectedEOF))
	assert.Equal(t, io.ErrUnexpectedEOF.Error(), err.Error())

	err = opaqueError(context.DeadlineExceeded)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestMasterTags: one epoch tag per master, each hashing into that
// master's slots.
func TestMasterTags(t *testing.T) {
	slots := []redis.ClusterSlot{
		{Start: 0, End: 5460, Nodes: []redis.ClusterNode{{Addr: "a:1"}, {Addr: "a-replica:1"}}},
		{Start: 5461, End: 10922, Nodes: []redis.ClusterNode{{Addr: "b:1"}}},
		{Start: 10923, End: 16000, Nodes: []redis.ClusterNode{{Addr: "c:1"}}},
		{Start: 16001, End: 16383, Nodes: []redis.ClusterNode{{Addr: "a:1"}}},
	}
	tags, err := masterTags(slots)
	require.NoError(t, err)
	require.Len(t, tags, 3)
	owner := func(slot int) string {
		for _, s := range slots {
			if slot >= int(s.Start) && slot <= int(s.End) {
				return s.Nodes[0].Addr
			}
		}
		return ""
	}
	assert.Equal(t, "a:1", owner(KeySlot("{"+tags[0]+"}epoch")))
	assert.Equal(t, "b:1", owner(KeySlot("{"+tags[1]+"}epoch")))
	assert.Equal(t, "c:1", owner(KeySlot("{"+tags[2]+"}epoch")))

	_, err = masterTags(nil)
	assert.Error(t, err)
}
