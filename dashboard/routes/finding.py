from dashboard.views import finding

finding.render()
