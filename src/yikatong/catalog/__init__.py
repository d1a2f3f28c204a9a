"""The subsidy catalogue (补贴项目目录): categories, items, departments, paying banks, treasury accounts."""
