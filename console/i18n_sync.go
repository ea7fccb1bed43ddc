package console

// The Chinese of the sync settings' scope picker, field mappings and extended fields.
func init() {
	for k, v := range map[string]string{
		"Sync scope":             "同步范围",
		"The whole organisation": "整个组织",
		"Only the departments chosen below (each with its sub-departments)":                    "仅下方选中的部门（含其下级部门）",
		"The platform's departments could not be read now:":                                    "暂时无法读取平台上的部门：",
		"Upstream department IDs, one per line":                                                "上游部门 ID，每行一个",
		"Departments on the platform":                                                          "平台上的部门",
		"Read from the platform just now. A chosen department brings all its sub-departments.": "刚从平台读取。选中一个部门即包含其全部下级部门。",
		"Chosen, but not on the platform now:":                                                 "已选中，但平台上现在没有：",
		"Field mappings":                                                                       "字段映射",
		"An upstream attribute fills a local field: name, email, mobile, or ext.NAME for an extended field. Fill in the empty last row to add one.": "用一个上游属性填写本地字段：name、email、mobile，或扩展字段 ext.名称。在最后的空行填写即可新增一条。",
		"Upstream attribute": "上游属性",
		"Local field":        "本地字段",
		"Remove":             "删除",
		"new":                "新增",
		"Extended fields":    "扩展字段",
		"Extended field":     "扩展字段",
		"Each is filled from the upstream attribute of the same name.": "每个扩展字段取自同名的上游属性。",
		"sub-departments": "个下级部门",
		"Choose at least one department, or the whole organisation.":       "请至少选择一个部门，或选择整个组织。",
		"A mapping needs both the upstream attribute and the local field.": "一条映射需要同时填写上游属性和本地字段。",
	} {
		zhText[k] = v
	}
}
