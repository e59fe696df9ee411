// Package budget decides which spend budgets apply to a request, holds a
// request's worst-case cost on all of them at once, and commits the actual
// cost afterwards.
package budget
