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

// TestNoResendHook: a node's broken connection reaches the cluster
// client's redirect loop without its retriable cause; a Redis reply
// (MOVED, READONLY) and a nil reply pass unchanged.
func TestNoResendHook(t *testing.T) {
	ctx := context.Background()
	run := func(err error) (redis.Cmder, error) {
		cmd := redis.NewCmd(ctx, "evalsha")
		hook := noResend{}.ProcessHook(func(_ context.Context, c redis.Cmder) error {
			c.SetErr(err)
			return err
		})
		return cmd, hook(ctx, cmd)
	}
	cmd, err := run(io.EOF)
	assert.False(t, errors.Is(err, io.EOF))
	assert.False(t, errors.Is(cmd.Err(), io.EOF))
	assert.Equal(t, "EOF", err.Error())

	_, err = run(redis.Nil)
	assert.ErrorIs(t, err, redis.Nil)

	var moved redis.Error = replyError("MOVED 3999 127.0.0.1:6381")
	_, err = run(moved)
	assert.Equal(t, moved, err)
}

// replyError is an error reply of Redis, as go-redis's own.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}
