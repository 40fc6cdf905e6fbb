package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/status"

	"github.com/tokenbroker/tokenbroker/client"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
)

// brokerAddr is the gRPC address of the demo broker the Examples call. It is
// set only by TestMain, which starts that broker before any Example runs
// (an Example has no *testing.T to start one with).
var brokerAddr string

func TestMain(m *testing.M) {
	b, err := brokertest.New()
	if err != nil {
		fmt.Fprintln(os.Stderr, "TestMain: starting the examples' broker:", err)
		os.Exit(1)
	}
	brokerAddr = b.GRPCAddr
	code := m.Run()
	if err := b.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func ExampleClient_CartoToken() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{
		Addr:     brokerAddr, // e.g. "localhost:9090"
		Username: brokertest.BostonUser,
		Password: brokertest.BostonPassword,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// The first call logs in and asks the broker; later calls are served
	// from the client's cache until the token is due for renewal.
	tok, err := c.CartoToken(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Group)
	for _, g := range tok.Grants {
		fmt.Println(g.ConnectionName, g.Source)
	}
	fmt.Println(tok.AllowedAPIs)
	// Output:
	// BOSTON
	// carto_dw SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = 'BOSTON'
	// [maps sql]
}

func ExampleClient_Revoke() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{
		Addr:     brokerAddr,
		Username: brokertest.NYUser,
		Password: brokertest.NYPassword,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	old, err := c.CartoToken(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// Deleted at CARTO and forgotten by the broker and by the client.
	res, err := c.Revoke(ctx, client.RevokeCartoToken(old.Token))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("revoked:", res.RevokedCount)

	fresh, err := c.CartoToken(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("new token:", fresh.Token != old.Token)
	// Output:
	// revoked: 1
	// new token: true
}

func ExampleNew_withToken() {
	ctx := context.Background()

	// Some other party logs in and hands over its session token ...
	login, err := client.New(ctx, client.Config{
		Addr:     brokerAddr,
		Username: brokertest.NYUser,
		Password: brokertest.NYPassword,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer login.Close()
	sess, err := login.Login(ctx)
	if err != nil {
		log.Fatal(err)
	}

	// ... which a client uses as its bearer. It cannot log in again by
	// itself: when the token expires, its calls fail UNAUTHENTICATED.
	c, err := client.New(ctx, client.Config{Addr: brokerAddr, Token: sess.Token})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	tok, err := c.CartoToken(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sess.Group, tok.Group, tok.AllowedAPIs)
	// Output:
	// NEW YORK NEW YORK [maps]
}

func ExampleClient_Query() {
	ctx := context.Background()
	// No credentials: the client may run the broker's public queries.
	c, err := client.New(ctx, client.Config{Addr: brokerAddr})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	res, err := c.Query(ctx, "stores-by-city", map[string]string{"city": "BOSTON", "storetype": "Supermarket"})
	if err != nil {
		log.Fatal(err)
	}
	var names []string
	for _, col := range res.Columns {
		names = append(names, col.Name)
	}
	fmt.Println(strings.Join(names, " "))
	for _, row := range res.Rows {
		fmt.Println(row["store_id"], row["address"])
	}

	// A value outside the query's declaration is refused, naming the rule.
	_, err = c.Query(ctx, "stores-by-city", map[string]string{"city": "BOSTON", "storetype": "Bakery"})
	fmt.Println(status.Code(err), status.Convert(err).Message())
	// Output:
	// store_id storetype address city geom
	// 1001 181 Cambridge St
	// 1002 60 Everett St
	// 1004 33 Kilmarnock St
	// InvalidArgument parameter storetype must be one of: Supermarket, Convenience Store, Department Store, Drugstore, Discount Store
}

func ExampleClient_QueryGeoJSON() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{
		Addr:     brokerAddr,
		Username: brokertest.NYUser,
		Password: brokertest.NYPassword,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// The caller's own stores: the broker binds the query's city to the
	// caller's group.
	fc, err := c.QueryGeoJSON(ctx, "my-stores", map[string]string{"storetype": "Drugstore"})
	if err != nil {
		log.Fatal(err)
	}
	// fc is a FeatureCollection, ready to serve as application/geo+json.
	var stores struct {
		Features []struct {
			Properties struct {
				City    string `json:"city"`
				Address string `json:"address"`
			} `json:"properties"`
		} `json:"features"`
	}
	if err := json.Unmarshal(fc, &stores); err != nil {
		log.Fatal(err)
	}
	for _, f := range stores.Features {
		fmt.Println(f.Properties.City, f.Properties.Address)
	}
	// Output:
	// NEW YORK 1 Penn Plaza
}
