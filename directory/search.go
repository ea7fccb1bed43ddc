package directory

// UserSearch selects people of an enterprise for the admin API's people search, ordered by
// username and paged by it.
type UserSearch struct {
	EnterpriseID string
	// Text matches a prefix of the name, the username or the email, whatever the case of ASCII
	// letters, or the whole mobile number ("" matches everyone). It is only ever a bound parameter.
	Text string
	// SourceID keeps the people linked to that source; DepartmentID (with SourceID) those whose
	// link to it lists that upstream department — or, with SubDepartments, it or any department
	// below it.
	SourceID       string
	DepartmentID   string
	SubDepartments bool
	Status         UserStatus // optional
	After          string     // paging: usernames after this one
	Limit          int        // at most 1000; 0 is 100
}
