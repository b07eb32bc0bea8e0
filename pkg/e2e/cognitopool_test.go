package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
)

const (
	// cognitoAPITimeout bounds the API calls of one helper call.
	cognitoAPITimeout = 10 * time.Second
	// testPassword satisfies Cognito's default password policy.
	testPassword = "E2e-Passw0rd!"
	// adminsGroup is the group newAdminSession puts its user in.
	adminsGroup = "admins"
)

// api returns a Cognito client for the emulator, built the way production
// code builds one, but with dummy static credentials (the emulator does not
// check signatures) and without retries, so a failing call fails at once.
func (cl *cognitoLocal) api() *cip.Client {
	return cip.New(cip.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(cl.endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		Retryer:      aws.NopRetryer{},
	})
}

// cognitoPool is a user pool with one public app client in the emulator.
type cognitoPool struct {
	api      *cip.Client
	id       string // local_xxxxxxxx; the emulator ignores the client's region
	clientID string
	issuer   string // http://127.0.0.1:PORT/<id>
	jwksURL  string // <issuer>/.well-known/jwks.json
}

// cognitoUser is a confirmed user with a permanent password.
type cognitoUser struct {
	username string
	password string
	email    string
	sub      string
}

// cognitoSession is a signed-in user of a fresh pool: everything a test
// needs to configure cognito-authz for the pool and to call it.
type cognitoSession struct {
	poolID      string
	clientID    string
	issuer      string
	jwksURL     string
	accessToken string
	idToken     string
	sub         string
	username    string
	email       string
	groups      []string
}

// newPool creates a user pool, an app client that allows USER_PASSWORD_AUTH,
// and the given groups. Each call makes a new pool, so tests sharing one
// emulator do not see each other's users.
func (cl *cognitoLocal) newPool(t testing.TB, groups ...string) *cognitoPool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cognitoAPITimeout)
	defer cancel()
	p := &cognitoPool{api: cl.api()}
	pool, err := p.api.CreateUserPool(ctx, &cip.CreateUserPoolInput{
		PoolName: aws.String("cognito-authz-e2e"),
	})
	if err != nil {
		t.Fatalf("CreateUserPool: %v", err)
	}
	p.id = aws.ToString(pool.UserPool.Id)
	p.issuer = cl.issuer(p.id)
	p.jwksURL = cl.jwksURL(p.id)
	client, err := p.api.CreateUserPoolClient(ctx, &cip.CreateUserPoolClientInput{
		UserPoolId: aws.String(p.id),
		ClientName: aws.String("cognito-authz-e2e"),
		ExplicitAuthFlows: []types.ExplicitAuthFlowsType{
			types.ExplicitAuthFlowsTypeAllowUserPasswordAuth,
			types.ExplicitAuthFlowsTypeAllowRefreshTokenAuth, // real Cognito requires it in the list
		},
	})
	if err != nil {
		t.Fatalf("CreateUserPoolClient: %v", err)
	}
	p.clientID = aws.ToString(client.UserPoolClient.ClientId)
	for _, g := range groups {
		if _, err := p.api.CreateGroup(ctx, &cip.CreateGroupInput{
			UserPoolId: aws.String(p.id),
			GroupName:  aws.String(g),
		}); err != nil {
			t.Fatalf("CreateGroup %q: %v", g, err)
		}
	}
	return p
}

// newUser creates a confirmed user username with the email attribute
// <username>@example.com (verified) and adds it to groups, which must have
// been passed to newPool.
func (p *cognitoPool) newUser(t testing.TB, username string, groups ...string) cognitoUser {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cognitoAPITimeout)
	defer cancel()
	u := cognitoUser{username: username, password: testPassword, email: username + "@example.com"}
	created, err := p.api.AdminCreateUser(ctx, &cip.AdminCreateUserInput{
		UserPoolId:    aws.String(p.id),
		Username:      aws.String(username),
		MessageAction: types.MessageActionTypeSuppress,
		UserAttributes: []types.AttributeType{
			{Name: aws.String("email"), Value: aws.String(u.email)},
			{Name: aws.String("email_verified"), Value: aws.String("true")},
		},
	})
	if err != nil {
		t.Fatalf("AdminCreateUser %q: %v", username, err)
	}
	for _, a := range created.User.Attributes {
		if aws.ToString(a.Name) == "sub" {
			u.sub = aws.ToString(a.Value)
		}
	}
	if u.sub == "" {
		t.Fatalf("AdminCreateUser %q: no sub attribute in %+v", username, created.User.Attributes)
	}
	// A permanent password moves the user from FORCE_CHANGE_PASSWORD to
	// CONFIRMED, so USER_PASSWORD_AUTH returns tokens without a challenge.
	if _, err := p.api.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{
		UserPoolId: aws.String(p.id),
		Username:   aws.String(username),
		Password:   aws.String(u.password),
		Permanent:  true,
	}); err != nil {
		t.Fatalf("AdminSetUserPassword %q: %v", username, err)
	}
	for _, g := range groups {
		if _, err := p.api.AdminAddUserToGroup(ctx, &cip.AdminAddUserToGroupInput{
			UserPoolId: aws.String(p.id),
			Username:   aws.String(username),
			GroupName:  aws.String(g),
		}); err != nil {
			t.Fatalf("AdminAddUserToGroup %q %q: %v", username, g, err)
		}
	}
	return u
}

// signIn authenticates u with USER_PASSWORD_AUTH, as a client app does, and
// returns its access and ID tokens.
func (p *cognitoPool) signIn(t testing.TB, u cognitoUser) (accessToken, idToken string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cognitoAPITimeout)
	defer cancel()
	out, err := p.api.InitiateAuth(ctx, &cip.InitiateAuthInput{
		ClientId: aws.String(p.clientID),
		AuthFlow: types.AuthFlowTypeUserPasswordAuth,
		AuthParameters: map[string]string{
			"USERNAME": u.username,
			"PASSWORD": u.password,
		},
	})
	if err != nil {
		t.Fatalf("InitiateAuth %q: %v", u.username, err)
	}
	if out.ChallengeName != "" {
		t.Fatalf("InitiateAuth %q: unexpected challenge %s", u.username, out.ChallengeName)
	}
	r := out.AuthenticationResult
	if r == nil || aws.ToString(r.AccessToken) == "" || aws.ToString(r.IdToken) == "" {
		t.Fatalf("InitiateAuth %q: no tokens in %+v", u.username, r)
	}
	return aws.ToString(r.AccessToken), aws.ToString(r.IdToken)
}

// newAdminSession creates a fresh pool with the group admins, a user alice
// in it, and signs alice in.
func (cl *cognitoLocal) newAdminSession(t testing.TB) cognitoSession {
	t.Helper()
	p := cl.newPool(t, adminsGroup)
	u := p.newUser(t, "alice", adminsGroup)
	access, id := p.signIn(t, u)
	return cognitoSession{
		poolID:      p.id,
		clientID:    p.clientID,
		issuer:      p.issuer,
		jwksURL:     p.jwksURL,
		accessToken: access,
		idToken:     id,
		sub:         u.sub,
		username:    u.username,
		email:       u.email,
		groups:      []string{adminsGroup},
	}
}
