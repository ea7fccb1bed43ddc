package simorg

import (
	"fmt"
	"math/rand/v2"
)

// ---- generator

var surnames = []struct{ han, py string }{
	{"王", "wang"}, {"李", "li"}, {"张", "zhang"}, {"刘", "liu"}, {"陈", "chen"}, {"杨", "yang"}, {"黄", "huang"},
	{"赵", "zhao"}, {"吴", "wu"}, {"周", "zhou"}, {"徐", "xu"}, {"孙", "sun"}, {"马", "ma"}, {"朱", "zhu"},
	{"胡", "hu"}, {"郭", "guo"}, {"何", "he"}, {"高", "gao"}, {"林", "lin"}, {"罗", "luo"}, {"郑", "zheng"},
	{"梁", "liang"}, {"谢", "xie"}, {"宋", "song"}, {"唐", "tang"}, {"许", "xu"}, {"韩", "han"}, {"冯", "feng"},
	{"邓", "deng"}, {"曹", "cao"}, {"彭", "peng"}, {"曾", "zeng"}, {"肖", "xiao"}, {"田", "tian"}, {"董", "dong"},
	{"袁", "yuan"}, {"潘", "pan"}, {"于", "yu"}, {"蒋", "jiang"}, {"蔡", "cai"}, {"余", "yu"}, {"杜", "du"},
	{"叶", "ye"}, {"程", "cheng"}, {"苏", "su"}, {"魏", "wei"}, {"吕", "lv"}, {"丁", "ding"}, {"任", "ren"},
	{"沈", "shen"}, {"欧阳", "ouyang"}, {"司马", "sima"},
}

var givenChars = []struct{ han, py string }{
	{"伟", "wei"}, {"芳", "fang"}, {"娜", "na"}, {"秀", "xiu"}, {"英", "ying"}, {"敏", "min"}, {"静", "jing"},
	{"丽", "li"}, {"强", "qiang"}, {"磊", "lei"}, {"军", "jun"}, {"洋", "yang"}, {"勇", "yong"}, {"艳", "yan"},
	{"杰", "jie"}, {"娟", "juan"}, {"涛", "tao"}, {"明", "ming"}, {"超", "chao"}, {"霞", "xia"}, {"平", "ping"},
	{"刚", "gang"}, {"桂", "gui"}, {"文", "wen"}, {"华", "hua"}, {"建", "jian"}, {"国", "guo"}, {"红", "hong"},
	{"晓", "xiao"}, {"鹏", "peng"}, {"辉", "hui"}, {"宇", "yu"}, {"婷", "ting"}, {"雪", "xue"}, {"琳", "lin"},
	{"浩", "hao"}, {"思", "si"}, {"欣", "xin"}, {"佳", "jia"}, {"子", "zi"}, {"梓", "zi"}, {"涵", "han"},
	{"一", "yi"}, {"诺", "nuo"}, {"晨", "chen"}, {"睿", "rui"}, {"嘉", "jia"}, {"怡", "yi"}, {"博", "bo"},
}

var deptNames = []struct{ zh, en string }{
	{"研发部", "R&D"}, {"产品部", "Product"}, {"市场部", "Marketing"}, {"销售部", "Sales"}, {"财务部", "Finance"},
	{"人力资源部", "HR"}, {"法务部", "Legal"}, {"运维部", "Operations"}, {"客户成功部", "Customer Success"},
	{"安全部", "Security"}, {"数据部", "Data"}, {"设计部", "Design"}, {"采购部", "Procurement"}, {"行政部", "Admin"},
	{"质量部", "Quality"}, {"测试部", "QA"}, {"平台部", "Platform"}, {"战略部", "Strategy"},
}

var regions = []string{"北京", "上海", "深圳", "杭州", "成都", "武汉", "南京", "西安", "广州", "苏州"}
var ordinals = []string{"一", "二", "三", "四", "五", "六", "七", "八", "九", "十"}
var positions = []string{"工程师", "高级工程师", "产品经理", "设计师", "销售经理", "会计", "专员", "主管", "总监", "分析师"}

// MaxDepth bounds generated department nesting (the root is depth 1).
const MaxDepth = 6

// Generate builds a reproducible organisation of n users (at least 1): the same seed and n give
// the same org. The first user is always 张三, userid zhangsan, active, in 研发部 (department 2).
func Generate(name string, n int, seed uint64) *Org {
	if n < 1 {
		n = 1
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	o := New(name)
	nDepts := max(2, min(n/20, 30000))
	depthOf := map[int]int{RootID: 1}
	var parents []int // departments that may take children
	parents = append(parents, RootID)
	used := map[int]map[string]bool{}
	// The first layer holds the well-known departments; a quarter of the departments at most, so
	// even a small org nests.
	firstLayer := max(1, min(len(deptNames), (nDepts-1)/4))
	for i := 0; i < nDepts-1; i++ {
		var parent int
		if i < firstLayer {
			parent = RootID // the first layer: the well-known departments
		} else {
			parent = parents[r.IntN(len(parents))]
		}
		var nm, en string
		for attempt := 0; ; attempt++ {
			switch depthOf[parent] {
			case 1:
				dn := deptNames[(i+attempt)%len(deptNames)]
				nm, en = dn.zh, dn.en
				if attempt >= len(deptNames) {
					nm, en = fmt.Sprintf("%s%d", dn.zh, attempt/len(deptNames)+1), fmt.Sprintf("%s %d", dn.en, attempt/len(deptNames)+1)
				}
			case 2:
				reg := regions[r.IntN(len(regions))]
				nm, en = reg+o.depts[parent].Name, o.depts[parent].NameEn+" "+reg
			default:
				k := r.IntN(len(ordinals))
				nm, en = o.depts[parent].Name+ordinals[k]+"组", fmt.Sprintf("%s team %d", o.depts[parent].NameEn, k+1)
			}
			if attempt > 3 {
				nm, en = fmt.Sprintf("%s-%d", nm, attempt), fmt.Sprintf("%s-%d", en, attempt)
			}
			if used[parent] == nil {
				used[parent] = map[string]bool{}
			}
			if !used[parent][nm] {
				used[parent][nm] = true
				break
			}
		}
		d, err := o.addDept(Dept{ParentID: parent, Name: nm, NameEn: en, Order: uint32(100000000 - i)})
		if err != nil {
			panic("simorg: generate: " + err.Error())
		}
		depthOf[d.ID] = depthOf[parent] + 1
		if depthOf[d.ID] < MaxDepth {
			parents = append(parents, d.ID)
		}
	}
	deptIDs := o.DeptIDs()[1:] // every department but the root
	seen := map[string]int{"zhangsan": 1}
	zs := &User{UserID: "zhangsan", UnionID: unionID(r), Name: "张三", Depts: []int{2}, Orders: []uint32{0}, IsLeader: []int{0},
		Position: "高级工程师", Mobile: "13800000001", Email: "zhangsan@example.com", BizMail: "zhangsan@corp.example.com", Gender: "1",
		Status: StatusActive, Alias: "Sam", JobNumber: "E000001", HiredDate: 1577836800000,
		ExtAttrs: []ExtAttr{{"工号", "E000001"}}}
	if _, err := o.putUser(zs, true); err != nil {
		panic("simorg: generate: " + err.Error())
	}
	for i := 1; i < n; i++ {
		s := surnames[r.IntN(len(surnames))]
		g1 := givenChars[r.IntN(len(givenChars))]
		name, py := s.han+g1.han, s.py+g1.py
		if r.IntN(3) > 0 {
			g2 := givenChars[r.IntN(len(givenChars))]
			name, py = name+g2.han, py+g2.py
		}
		uid := py
		if k := seen[py]; k > 0 {
			uid = fmt.Sprintf("%s%d", py, k+1)
		}
		seen[py]++
		depts := []int{deptIDs[r.IntN(len(deptIDs))]}
		if r.IntN(10) == 0 { // one in ten is in a second department
			if d2 := deptIDs[r.IntN(len(deptIDs))]; d2 != depts[0] {
				depts = append(depts, d2)
			}
		}
		status := StatusActive
		switch x := r.IntN(100); {
		case x < 4:
			status = StatusDisabled
		case x < 8:
			status = StatusNotActivated
		case x < 10:
			status = StatusExited
		}
		gender := []string{"1", "2"}[r.IntN(2)]
		u := &User{UserID: uid, UnionID: unionID(r), Name: name, Depts: depts, Orders: make([]uint32, len(depts)),
			IsLeader: make([]int, len(depts)), Position: positions[r.IntN(len(positions))],
			Mobile: fmt.Sprintf("13%09d", 100000000+i), Email: uid + "@example.com", Gender: gender, Status: status,
			JobNumber: fmt.Sprintf("E%06d", i+1), HiredDate: 1262304000000 + int64(r.IntN(500000000))*1000,
			ExtAttrs: []ExtAttr{{"工号", fmt.Sprintf("E%06d", i+1)}}}
		if _, err := o.putUser(u, true); err != nil {
			panic("simorg: generate: " + err.Error())
		}
	}
	// A leader per department that has members: its first member.
	for _, id := range deptIDs {
		if m := o.members[id]; len(m) > 0 {
			o.depts[id].Leaders = []string{m[0]}
			u := o.users[m[0]]
			for k, d := range u.Depts {
				if d == id {
					u.IsLeader[k] = 1
				}
			}
		}
	}
	return o
}

const unionAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func unionID(r *rand.Rand) string {
	b := make([]byte, 22)
	for i := range b {
		b[i] = unionAlphabet[r.IntN(len(unionAlphabet))]
	}
	return string(b) + "iE"
}
