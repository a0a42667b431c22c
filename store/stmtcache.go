package store

import (
	"container/list"
	"context"
	"database/sql"
	"database/sql/driver"
	"reflect"

	"modernc.org/sqlite"
)

// stmtCacheSize bounds the prepared statements each SQLite connection keeps. The store
// runs a few dozen distinct statements; the rest (a log insert of n lines) fall out.
const stmtCacheSize = 128

// openSQLiteDB opens dsn with modernc.org/sqlite, its connections keeping the statements
// they ran prepared. The driver parses the SQL of every Exec and Query afresh: at a
// thousand runs a minute that parsing was an eighth of the daemon's CPU, most of it on the
// one writer connection every write waits for. database/sql's own prepared statements do
// not fit: preparing one takes a pool connection, which on the single-connection writer a
// transaction in flight holds.
func openSQLiteDB(dsn string) *sql.DB {
	return sql.OpenDB(cachingConnector{dsn: dsn, driver: &sqlite.Driver{}})
}

type cachingConnector struct {
	dsn    string
	driver *sqlite.Driver
}

func (c cachingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.driver.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return newCachingConn(conn), nil
}

func (c cachingConnector) Driver() driver.Driver { return c.driver }

// sqliteConn is what database/sql uses of a modernc.org/sqlite connection; cachingConn
// offers the same, so database/sql treats both alike (argument conversion included).
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// cachingConn runs each statement through a prepared one kept by its SQL text, least
// recently used dropped first. A statement whose rows are still open is not reused until
// they close: a second use meanwhile runs uncached, as before.
type cachingConn struct {
	sqliteConn
	byQuery map[string]*list.Element // of *cachedStmt
	lru     *list.List
}

type cachedStmt struct {
	query string
	stmt  interface {
		driver.Stmt
		driver.StmtExecContext
		driver.StmtQueryContext
	}
	busy bool // rows of it are open
}

func newCachingConn(c driver.Conn) driver.Conn {
	sc, ok := c.(sqliteConn)
	if !ok {
		return c // a driver version without these: run uncached
	}
	return &cachingConn{sqliteConn: sc, byQuery: map[string]*list.Element{}, lru: list.New()}
}

// cached returns the statement for query, prepared if new; nil when it is in use or
// cannot be prepared (the uncached call then reports the error).
func (c *cachingConn) cached(ctx context.Context, query string) *cachedStmt {
	if el, ok := c.byQuery[query]; ok {
		cs := el.Value.(*cachedStmt)
		if cs.busy {
			return nil
		}
		c.lru.MoveToFront(el)
		return cs
	}
	st, err := c.sqliteConn.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	full, ok := st.(interface {
		driver.Stmt
		driver.StmtExecContext
		driver.StmtQueryContext
	})
	if !ok {
		_ = st.Close()
		return nil
	}
	cs := &cachedStmt{query: query, stmt: full}
	c.byQuery[query] = c.lru.PushFront(cs)
	for c.lru.Len() > stmtCacheSize {
		c.evict(c.lru.Back())
	}
	return cs
}

func (c *cachingConn) evict(el *list.Element) {
	cs := el.Value.(*cachedStmt)
	c.lru.Remove(el)
	delete(c.byQuery, cs.query)
	if !cs.busy {
		_ = cs.stmt.Close()
	}
	// A busy one is closed when its rows close (cachingRows.Close).
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if cs := c.cached(ctx, query); cs != nil {
		return cs.stmt.ExecContext(ctx, args)
	}
	return c.sqliteConn.ExecContext(ctx, query, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs := c.cached(ctx, query)
	if cs == nil {
		return c.sqliteConn.QueryContext(ctx, query, args)
	}
	rows, err := cs.stmt.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	cs.busy = true
	return &cachingRows{Rows: rows, conn: c, cs: cs}, nil
}

func (c *cachingConn) Close() error {
	for el := c.lru.Front(); el != nil; el = el.Next() {
		if cs := el.Value.(*cachedStmt); !cs.busy {
			_ = cs.stmt.Close()
		}
	}
	c.byQuery, c.lru = nil, list.New()
	return c.sqliteConn.Close()
}

// cachingRows frees its statement for reuse once closed; the column-type methods are
// modernc.org/sqlite's own.
type cachingRows struct {
	driver.Rows
	conn *cachingConn
	cs   *cachedStmt
}

func (r *cachingRows) Close() error {
	err := r.Rows.Close()
	if r.cs != nil {
		r.cs.busy = false
		if el, ok := r.conn.byQuery[r.cs.query]; !ok || el.Value != r.cs {
			_ = r.cs.stmt.Close() // evicted while its rows were open
		}
		r.cs = nil
	}
	return err
}

func (r *cachingRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachingRows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *cachingRows) ColumnTypeNullable(i int) (bool, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *cachingRows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

func (r *cachingRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}
