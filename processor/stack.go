package processor

// growStack makes the runtime give the calling goroutine the stack a
// stream's goroutine ends up needing, while its stack is still shallow.
//
// gRPC runs each stream in a new goroutine, whose stack starts small (the
// runtime's running average) and is doubled by copying whenever a call
// would overflow it. For a stream that first happens deep inside Recv,
// where copying means walking and adjusting some twenty frames, and the
// load generator measured it at several microseconds a lifecycle. Asking
// for the room at the top of Process, with a handful of frames below,
// makes the same growth cost a fraction of that. 4 KiB of frame grows a
// small stack to the 8 KiB a stream holds anyway (the memory per
// in-flight stream in docs/performance.md is unchanged).
//
//go:noinline
func growStack() byte {
	var room [4 << 10]byte
	return room[growIndex]
}

// growIndex is read by growStack, so that the compiler keeps its frame.
var growIndex int
