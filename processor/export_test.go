package processor

// SetRunningUsage makes every stream s starts from now on ask vLLM for
// continuous usage, as a stream whose reservation grows while it streams
// does (issue 19), for the tests of the processor_test package.
func (s *Server) SetRunningUsage(on bool) { s.runningUsage.Store(on) }
